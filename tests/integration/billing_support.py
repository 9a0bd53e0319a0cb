"""Billing as tests see it: the service beside a payments simulator of the test's own, a signed-in user, and what
the database and the provider hold afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from pydantic import SecretStr
from quart.typing import TestClientProtocol as HttpClient
from sqlalchemy import make_url

from app.http.factory import create_app
from app.http.services import services_of
from app.settings import Settings
from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.integration.auth_support import User, auth_settings, serve
from tests.support.postgres import truncate_all
from tests.support.processes import callback_host, free_port
from tests.support.simulator_fixtures import API_KEY

WEBHOOK_SECRET = "whsec_billing_test"
PAYMENT = {"amount": 1250, "currency": "eur", "customer": "cus_42", "description": "Two mugs"}


@dataclass
class Billing:
    client: HttpClient
    sim: SimulatorClient
    database_uri: str
    user: User
    token: str

    def headers(self, key: str | None, token: str | None = None, client_id: str | None = None) -> dict[str, str]:
        headers = self.user.headers(token or self.token, client_id)
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def pay(self, key: str | None, body: Any = None, **headers: Any) -> Any:
        return await self.client.post(
            "/api/billing/payments", json=PAYMENT if body is None else body, headers=self.headers(key, **headers)
        )

    async def provider_charges(self) -> list[dict[str, Any]]:
        """Every charge the provider holds, newest first (its own record, not what it was asked)."""
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
            http.get(f"{self.sim.base_url}/v1/charges", params={"limit": "100"}) as response,
        ):
            assert response.status == 200
            charges: list[dict[str, Any]] = (await response.json())["data"]
            return charges

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(make_url(self.database_uri).render_as_string(hide_password=False))
        try:
            found: list[asyncpg.Record] = await connection.fetch(sql, *args)
            return found
        finally:
            await connection.close()


def billing_settings(settings: Settings, url: str, **overrides: Any) -> Settings:
    payments = {"payments_url": url, "payments_api_key": SecretStr(API_KEY),
                "payments_webhook_secrets": SecretStr(WEBHOOK_SECRET)}  # fmt: skip
    return auth_settings(settings, **(payments | overrides))


@asynccontextmanager
async def billing(settings: Settings, database_uri: str, **overrides: Any) -> AsyncIterator[Billing]:
    """The service on a payments simulator of its own, and a signed-in user (ada)."""
    await truncate_all(database_uri)
    with BackgroundSimulator(build("payments", {"seed": 7, "rules": []})) as simulator:
        app = create_app(billing_settings(settings, simulator.url, **overrides))
        async with SimulatorClient(simulator.url) as sim, serve(app) as client:
            user = User(client, "ada@example.org")
            assert (await user.register()).status_code == 202
            token = (await user.tokens())["access_token"]
            yield Billing(client, sim, database_uri, user, token)
    await truncate_all(database_uri)


def signature(body: bytes, secret: str = WEBHOOK_SECRET, at: float | None = None) -> str:
    timestamp = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def settle_everything(env: Billing, rounds: int = 20) -> None:
    """Run the reconcile job until no payment is processing (its schedule brought forward; the provider's clock
    moved on past any pending settlement), as the worker would over the next minutes."""
    billing_service = services_of(env.client.app).billing
    for _ in range(rounds):
        if not await env.rows("SELECT 1 FROM payments WHERE status = 'processing'"):
            return
        await env.rows("UPDATE payments SET reconcile_at = now() WHERE reconcile_at IS NOT NULL")
        await env.sim.advance_clock(60)
        await billing_service.reconcile()
    raise AssertionError("payments still processing after reconciliation")


async def told_of(response: Any) -> tuple[str, str] | None:
    """The payment id and status an answer told the client, if it told of one."""
    body = await response.get_json()
    if response.status_code in (201, 202):
        return body["id"], body["status"]
    if response.status_code == 402:
        return body["payment_id"], "failed"
    return None


@asynccontextmanager
async def webhook_relay(env: Billing) -> AsyncIterator[str]:
    """A real HTTP endpoint for the simulator's webhooks, handing each to the app under test as it came (the app
    serves in-process here); the URL to register."""

    async def forward(request: web.Request) -> web.Response:
        headers = {"Content-Type": "application/json"}
        if (signed := request.headers.get("Stripe-Signature")) is not None:
            headers["Stripe-Signature"] = signed
        answer = await env.client.post("/api/billing/webhooks/payments", data=await request.read(), headers=headers)
        return web.Response(status=answer.status_code, body=await answer.get_data())

    app = web.Application()
    app.router.add_post("/hook", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    host = callback_host()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


async def until_deliveries_end(env: Billing, copies: int, within: float = 20) -> list[dict[str, Any]]:
    """Until `copies` copies of events were each delivered or dropped (the simulator's log: polled); the log."""
    async with asyncio.timeout(within):
        while True:
            log = await env.sim.webhook_deliveries()
            ended = {(entry["event"], entry["copy"]) for entry in log if entry["outcome"] in ("delivered", "dropped")}
            if len(ended) >= copies:
                return log
            await asyncio.sleep(0.1)

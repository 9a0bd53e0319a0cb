"""Billing as tests see it: the service beside a payments simulator of the test's own, a signed-in user, and what
the database and the provider hold afterwards."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from pydantic import SecretStr
from quart.typing import TestClientProtocol as HttpClient
from sqlalchemy import make_url

from app.http.factory import create_app
from app.settings import Settings
from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.integration.auth_support import User, auth_settings, serve
from tests.support.postgres import truncate_all
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
        async with SimulatorClient(simulator.url) as sim:
            async for client in serve(create_app(billing_settings(settings, simulator.url, **overrides))):
                user = User(client, "ada@example.org")
                assert (await user.register()).status_code == 202
                token = (await user.tokens())["access_token"]
                yield Billing(client, sim, database_uri, user, token)
    await truncate_all(database_uri)


def signature(body: bytes, secret: str = WEBHOOK_SECRET, at: float | None = None) -> str:
    timestamp = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"

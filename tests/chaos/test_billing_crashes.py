"""NFR-1 with real processes: the API SIGKILLed between a payment's phases and restarted while its client retries,
and the worker SIGKILLed in the middle of reconciling. Each ends on the billing invariants."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import make_url

from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.integration.billing_support import PAYMENT
from tests.support.billing_invariants import check_billing_invariants
from tests.support.postgres import truncate_all
from tests.support.processes import ServiceProcess, clean_environment, free_port
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.chaos

EMAIL, PASSWORD = "ada@example.org", "a long enough passphrase"


async def rows(database_uri: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        found: list[asyncpg.Record] = await connection.fetch(sql)
        return found
    finally:
        await connection.close()


async def until(condition: Callable[[], Awaitable[Any]], within: float = 30) -> Any:
    """Until `condition()` is truthy (the state is in PostgreSQL or the simulator: polled)."""
    async with asyncio.timeout(within):
        while not (result := await condition()):  # noqa: ASYNC110 - state held elsewhere
            await asyncio.sleep(0.05)
    return result


def environment(database_uri: str, payments_url: str, **extra: str) -> dict[str, str]:
    return clean_environment(
        PROFILE="test", DB_URI=database_uri, PAYMENTS_URL=payments_url, PAYMENTS_API_KEY=API_KEY,
        CLIENT_RATE="off", ADDRESS_RATE="off", IDEMPOTENCY_LEASE_SECONDS="1", **extra,
    )  # fmt: skip


def make_account(database_uri: str, cwd: Path) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "app", "users", "create", EMAIL, "--display-name", "Ada"], input=PASSWORD + "\n",
        text=True, check=True, capture_output=True, timeout=60, cwd=cwd,
        env=clean_environment(PROFILE="test", DB_URI=database_uri),
    )  # fmt: skip


async def signed_in(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    headers = {"X-Client-Id": "shop-1"}
    async with http.post(f"{base}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}, headers=headers) as r:
        assert r.status == 200, await r.text()
        return headers | {"Authorization": f"Bearer {(await r.json())['access_token']}"}


async def pay(http: aiohttp.ClientSession, base: str, headers: dict[str, str], key: str) -> tuple[int, Any]:
    async with http.post(f"{base}/api/billing/payments", json=PAYMENT, headers=headers | {"Idempotency-Key": key}) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.requirement("NFR-1")
@pytest.mark.parametrize("phase", ["processing", "after"], ids=["before-the-provider-acts", "after-it-committed"])
async def test_the_api_killed_between_phases_and_restarted_while_the_client_retries(
    database_uri: str, tmp_path: Path, phase: str
) -> None:
    await truncate_all(database_uri)
    make_account(database_uri, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with BackgroundSimulator(build("payments", {"seed": 9, "rules": []})) as simulator:
        env = environment(database_uri, simulator.url, LISTEN_PORT=str(port))
        async with SimulatorClient(simulator.url) as sim, aiohttp.ClientSession() as http:
            slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 3000}, "phase": phase}
            await sim.add_fault(route="/v1/charges", method="POST", action=slow)
            async with ServiceProcess(["serve"], env, cwd=tmp_path) as api:
                headers = await signed_in(http, base)
                paying = asyncio.create_task(pay(http, base, headers, "order-1"))
                await until(lambda: rows(database_uri, "SELECT 1 FROM payments"))  # phase (a) is committed
                await asyncio.sleep(0.3)  # the charge call is on its way (the provider holds it for 3 s)
                os.killpg(api.pid, signal.SIGKILL)
                with pytest.raises(aiohttp.ClientError):
                    await paying
            [payment] = await rows(database_uri, "SELECT public_id, status FROM payments")
            assert payment["status"] == "processing"
            await sim.clear_faults()

            async with ServiceProcess(["serve"], env, cwd=tmp_path):
                headers = await signed_in(http, base)  # this process seals tokens with a key of its own
                status, body = await until(lambda: _final(http, base, headers), within=20)
            assert status == 201, body
            assert body["id"] == payment["public_id"]  # resumed: the same payment, not a new one
            told = {body["id"]: "succeeded"}
            assert await check_billing_invariants(database_uri, simulator.url, told) == {"succeeded": 1}
    await truncate_all(database_uri)


async def _final(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> tuple[int, Any] | None:
    """The retry's answer once it is not 409 (the dead request's lease has a second to run out)."""
    status, body = await pay(http, base, headers, "order-1")
    return None if status == 409 else (status, body)


@pytest.mark.requirement("NFR-1")
async def test_the_worker_killed_mid_reconcile_leaves_the_next_worker_to_finish(
    database_uri: str, tmp_path: Path
) -> None:
    await truncate_all(database_uri)
    make_account(database_uri, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with BackgroundSimulator(build("payments", {"seed": 10, "rules": []})) as simulator:
        api_env = environment(database_uri, simulator.url, LISTEN_PORT=str(port),
                              PAYMENTS_POLICY='{"deadline": 1, "read_timeout": 0.5, "max_attempts": 1}')  # fmt: skip
        worker_env = environment(database_uri, simulator.url, PAYMENTS_RECONCILE_SECONDS="1")
        async with SimulatorClient(simulator.url) as sim, aiohttp.ClientSession() as http:
            lost = {"kind": "drop_after_commit"}
            async with (
                sim.fault(route="/v1/charges", method="POST", action=lost, times=6),
                ServiceProcess(["serve"], api_env, cwd=tmp_path),
            ):
                headers = await signed_in(http, base)
                answers = [await pay(http, base, headers, f"order-{n}") for n in range(6)]
            assert {status for status, _ in answers} == {202}
            told = {body["id"]: body["status"] for _, body in answers}
            await rows(database_uri, "UPDATE payments SET reconcile_at = now()")

            slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 1000}, "phase": "before"}
            await sim.add_fault(route="/v1/charges", method="POST", action=slow)
            async with ServiceProcess(["worker"], worker_env, cwd=tmp_path, ready_line="worker started") as first:
                await until(lambda: rows(database_uri, "SELECT 1 FROM job_runs WHERE job = 'payments_reconcile' "
                                                       "AND finished_at IS NULL"))  # fmt: skip
                await until(lambda: rows(database_uri, "SELECT 1 FROM payments WHERE status = 'succeeded'"))
                os.killpg(first.pid, signal.SIGKILL)
            settled = len(await rows(database_uri, "SELECT 1 FROM payments WHERE status <> 'processing'"))
            assert 0 < settled < 6  # killed in the middle of its pass
            await sim.clear_faults()
            async with ServiceProcess(["worker"], worker_env, cwd=tmp_path, ready_line="worker started"):
                await until(lambda: _none_processing(database_uri), within=30)
            assert await check_billing_invariants(database_uri, simulator.url, told) == {"succeeded": 6}
    await truncate_all(database_uri)


async def _none_processing(database_uri: str) -> bool:
    return not await rows(database_uri, "SELECT 1 FROM payments WHERE status = 'processing'")

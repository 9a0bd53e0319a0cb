"""NFR-4 under overload, over real sockets to `python -m app serve`: once the app's concurrency slots have
INBOUND_QUEUE waiters, the edge refuses the next request at once (503 problem+json with Retry-After, counted as
shed) instead of letting it wait INBOUND_MAX_WAIT; exempt routes still answer; the waiter is served when a slot
frees. The slot is held by a read that waits on a table the test keeps locked (a request waiting on a provider
would lend its slot)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url

from app.src.utils.problems import problem_type
from tests.support.accounts import PASSWORD, make_account
from tests.support.processes import ServiceProcess, clean_environment, free_port

pytestmark = pytest.mark.chaos


async def until(condition: Callable[[], Awaitable[Any]], within: float = 20) -> Any:
    async with asyncio.timeout(within):
        while not (result := await condition()):  # noqa: ASYNC110 - state held in another process
            await asyncio.sleep(0.05)
    return result


async def gauges(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples
            if not sample.labels}  # fmt: skip


@pytest.mark.requirement("NFR-4")
async def test_the_edge_refuses_at_once_when_the_queue_is_full_and_the_waiter_is_served(
    database_uri: str, tmp_path: Path
) -> None:
    email = f"edge-{uuid.uuid4().hex[:8]}@example.org"
    await asyncio.to_thread(make_account, database_uri, email, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = clean_environment(
        PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port), CLIENT_RATE="off", ADDRESS_RATE="off",
        INBOUND_CONCURRENCY="1", INBOUND_QUEUE="1", INBOUND_MAX_WAIT="10", INBOUND_RETRY_AFTER="7",
    )  # fmt: skip
    async with aiohttp.ClientSession() as http, ServiceProcess(["serve"], environment, cwd=tmp_path):
        client = {"X-Client-Id": "edge"}
        async with http.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD},
                             headers=client) as r:  # fmt: skip
            signed_in = client | {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        locker = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
        try:
            locked = locker.transaction()
            await locked.start()
            await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            holding = asyncio.create_task(http.get(f"{base}/api/auth/me", headers=signed_in))
            await until(lambda: _equals(gauges(http, base), "http_requests_in_flight", 1))  # it holds the only slot
            waiting = asyncio.create_task(http.get(f"{base}/api/auth/me", headers=signed_in))
            await until(lambda: _equals(gauges(http, base), "http_requests_waiting", 1))

            asked = time.monotonic()
            async with http.get(f"{base}/api/auth/me", headers=signed_in) as refused:
                body = await refused.json(content_type=None)
                assert refused.status == 503
                assert refused.headers["Content-Type"] == "application/problem+json"
                assert refused.headers["Retry-After"] == "7"
            assert time.monotonic() - asked < 5  # at once: the app would have held it up to INBOUND_MAX_WAIT (10 s)
            assert (body["status"], body["type"]) == (503, problem_type("overloaded"))
            async with http.get(f"{base}/api/common/health") as health:
                assert health.status == 200  # exempt routes are never shed
            assert (await gauges(http, base))["http_requests_shed_total"] == 1
            assert await refused_then_served_on_one_connection(port, signed_in["Authorization"])
            assert (await gauges(http, base))["http_requests_shed_total"] == 2
            await locked.rollback()
        finally:
            await locker.close()
        async with await holding as held:
            assert held.status == 200
        async with await waiting as served:
            assert served.status == 200  # the waiter got the slot the first read gave back


async def refused_then_served_on_one_connection(port: int, authorization: str) -> bool:
    """A refusal keeps the connection: the next request on it is answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        statuses = []
        for path in ("/api/auth/me", "/api/common/health"):
            head_lines = [f"GET {path} HTTP/1.1", "Host: x", "X-Client-Id: edge", f"Authorization: {authorization}"]
            writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            statuses.append(int(head[9:12]))
        return statuses == [503, 200]
    finally:
        writer.close()


async def _equals(reading: Awaitable[dict[str, float]], name: str, value: float) -> bool:
    return (await reading).get(name) == value

"""NFR-4 inbound: the concurrency limit sheds load with 503 + Retry-After instead of queueing without bound (and
does not count a request waiting on a provider), and per-client rate limits answer 429 with the RateLimit headers
without touching other clients."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from quart import Blueprint
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.http.authentication import public
from app.settings import Settings
from tests.integration.billing_support import billing
from tests.support.cpu import compute_for

pytestmark = pytest.mark.chaos


@pytest.fixture
async def gated(settings: Settings) -> AsyncIterator[tuple[HttpClient, asyncio.Event]]:
    """The service with concurrency 2 and a route that holds its request until the test opens the gate."""
    gate = asyncio.Event()
    slow = Blueprint("slow", __name__)

    @slow.get("/work")
    @public
    async def work() -> dict[str, str]:
        await gate.wait()
        return {"done": "yes"}

    limits = {"inbound_concurrency": 2, "inbound_busy_target": None, "inbound_max_wait": 0.05, "inbound_retry_after": 3}
    app = create_app(settings.model_copy(update=limits))
    app.register_blueprint(slow, url_prefix="/api/slow")
    async with app.test_app() as serving:
        yield serving.test_client(), gate


async def started(client: HttpClient, path: str, headers: dict[str, str]) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.create_task(client.get(path, headers=headers))
    await asyncio.sleep(0)
    return task


@pytest.mark.requirement("NFR-4")
async def test_requests_beyond_the_concurrency_limit_get_503_quickly_while_the_first_complete(
    gated: tuple[HttpClient, asyncio.Event],
) -> None:
    client, gate = gated
    headers = {"X-Client-Id": "load"}
    holding = [await started(client, "/api/slow/work", headers) for _ in range(2)]
    for _ in range(10):  # let both take their slots
        await asyncio.sleep(0)
    moment = time.monotonic()
    shed = await asyncio.gather(*(client.get("/api/slow/work", headers=headers) for _ in range(3)))
    assert time.monotonic() - moment < 1
    for response in shed:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "3"
        assert response.headers["Content-Type"] == "application/problem+json"
        body = await response.get_data()
        assert int(response.headers["Content-Length"]) == len(body)
        assert await response.get_json() == {
            "type": "urn:proving-ground:problem:overloaded",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "The service is at capacity; retry after the time in Retry-After.",
            "instance": "/api/slow/work",
            "request_id": response.headers["X-Request-ID"],
        }
    health, scrape = await client.get("/api/common/health"), await client.get("/metrics")
    assert (health.status_code, scrape.status_code) == (200, 200)  # health checks and scrapes are never shed
    gate.set()
    for task in holding:
        response = await task
        assert response.status_code == 200
    metrics = await (await client.get("/metrics")).get_data(as_text=True)
    assert "http_requests_shed_total 3.0" in metrics


@pytest.mark.requirement("NFR-4")
async def test_a_client_over_its_rate_gets_429_with_ratelimit_headers_and_others_are_unaffected(
    settings: Settings,
) -> None:
    app = create_app(settings.model_copy(update={"client_rate": 0.5, "client_burst": 2}))
    async with app.test_app() as serving:
        client = serving.test_client()
        greedy = {"X-Client-Id": "greedy"}
        first = await client.get("/api/nowhere", headers=greedy)
        assert first.headers["RateLimit-Policy"] == '"per-client";q=2;w=4'
        assert first.headers["RateLimit"].startswith('"per-client";r=1;')
        await client.get("/api/nowhere", headers=greedy)
        limited = await client.get("/api/nowhere", headers=greedy)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "2"
        assert limited.headers["RateLimit"] == '"per-client";r=0;t=2'
        assert limited.headers["RateLimit-Policy"] == '"per-client";q=2;w=4'
        assert limited.headers["Content-Type"] == "application/problem+json"
        assert await limited.get_json() == {
            "type": "urn:proving-ground:problem:rate-limited",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "This client has used its 2 requests; retry after 2 s.",
            "instance": "/api/nowhere",
            "request_id": limited.headers["X-Request-ID"],
        }
        other = await client.get("/api/nowhere", headers={"X-Client-Id": "polite"})
        assert other.status_code == 404  # past the limiter, to the router
        metrics = await (await client.get("/metrics")).get_data(as_text=True)
        assert "http_requests_rate_limited_total 1.0" in metrics


@pytest.mark.requirement("NFR-4")
async def test_a_request_waiting_on_a_slow_provider_lends_its_slot_and_still_finishes(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri, inbound_concurrency=1, inbound_max_wait=0.05) as env:
        slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 1500}, "phase": "after"}  # it acts, late
        await env.sim.add_fault(route="/v1/charges", method="POST", action=slow)
        paying = asyncio.create_task(env.pay("slow-provider"))
        deadline = time.monotonic() + 10
        while not await env.provider_charges():  # the payment now waits on the provider's answer
            assert time.monotonic() < deadline, "the charge never reached the provider"
            await asyncio.sleep(0.02)
        reads = [await env.client.get("/api/auth/me", headers=env.headers(None)) for _ in range(3)]
        assert [read.status_code for read in reads] == [200, 200, 200]  # the only slot was lent, not held
        assert not paying.done()
        paid = await paying
        assert paid.status_code == 201, await paid.get_data(as_text=True)
        assert (await paid.get_json())["status"] == "succeeded"
        scrape = await (await env.client.get("/metrics")).get_data(as_text=True)
        assert "http_requests_shed_total 0.0" in scrape
        assert "http_requests_in_flight 0.0" in scrape  # the slot came back and went back: none is lost


async def concurrency_limit(client: HttpClient) -> float:
    metrics = await (await client.get("/metrics")).get_data(as_text=True)
    found = re.search(r"^http_requests_concurrency_limit (\S+)$", metrics, re.MULTILINE)
    assert found is not None
    return float(found[1])


@asynccontextmanager
async def hogging(settings: Settings, gate: asyncio.Event | None = None, **update: Any) -> AsyncIterator[HttpClient]:
    """The service (a ceiling of 16) with a route that computes for 30 ms on the event loop, and one that holds its
    request until `gate` opens."""
    hog = Blueprint("hog", __name__)

    @hog.get("/work")
    @public
    async def work() -> dict[str, str]:
        return {"done": str(compute_for(0.03))}

    @hog.get("/held")
    @public
    async def held() -> dict[str, str]:
        assert gate is not None
        await gate.wait()
        return {"done": "yes"}

    app = create_app(settings.model_copy(update={"inbound_concurrency": 16, "client_rate": None} | update))
    app.register_blueprint(hog, url_prefix="/api/hog")
    async with app.test_app() as serving:
        yield serving.test_client()


async def limit_reaches(client: HttpClient, limit: int) -> None:
    deadline = time.monotonic() + 10
    while await concurrency_limit(client) != limit:
        assert time.monotonic() < deadline, f"the limit never reached {limit}"
        await asyncio.sleep(0.05)  # a scrape costs the loop a few milliseconds: between them, it is idle


@pytest.mark.requirement("NFR-4")
async def test_the_concurrency_limit_shrinks_to_its_floor_while_the_loop_is_busy_and_comes_back_when_it_is_not(
    settings: Settings,
) -> None:
    gate = asyncio.Event()
    # Waits as long as the test needs: this is about the limit, not about how long a queue may stand after the hog.
    update = {"inbound_min_concurrency": 4, "inbound_busy_target": 0.3, "inbound_max_wait": 10.0,
              "inbound_standing_wait": 10.0}  # fmt: skip
    async with hogging(settings, gate, **update) as client:
        assert await concurrency_limit(client) == 4  # it starts at its floor
        await asyncio.sleep(0.3)
        assert await concurrency_limit(client) == 4  # and an idle service has no reason to raise it
        held = [asyncio.create_task(client.get("/api/hog/held", headers={"X-Client-Id": "held"})) for _ in range(8)]
        await limit_reaches(client, 16)  # eight in use: half of 16
        gate.set()
        assert [(await request).status_code for request in held] == [200] * 8
        for _ in range(40):
            assert (await client.get("/api/hog/work", headers={"X-Client-Id": "hog"})).status_code == 200
            if await concurrency_limit(client) == 4:
                break
        assert await concurrency_limit(client) == 4
        gate.clear()
        held = [asyncio.create_task(client.get("/api/hog/held", headers={"X-Client-Id": "held"})) for _ in range(8)]
        await limit_reaches(client, 16)
        gate.set()
        assert [(await request).status_code for request in held] == [200] * 8


async def test_with_the_busy_target_off_the_limit_stays_where_it_is_set(settings: Settings) -> None:
    async with hogging(settings, inbound_busy_target=None) as client:
        for _ in range(10):
            assert (await client.get("/api/hog/work", headers={"X-Client-Id": "hog"})).status_code == 200
        assert await concurrency_limit(client) == 16

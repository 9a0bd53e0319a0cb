"""How a provider call that fails for good is reported: the error that says what happened (and whether a request
sent may have acted), the attempts it took, and the outcome it is counted under. Against a provider served in this
process over real HTTP, answering what each test scripts."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from app.src.api.common.providers import (
    CircuitOpenError,
    OutcomeUnknownError,
    ProviderBusyError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderRejectedError,
    ProviderResponseTooLargeError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from tests.support.processes import free_port

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status(code: int, headers: dict[str, str] | None = None) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": code}, status=code, headers=headers)

    return answer


def body_of(size: int, *, streamed: bool) -> Answer:
    """An answer of `size` bytes, with its Content-Length or streamed in chunks without one."""

    async def answer(request: web.Request) -> web.StreamResponse:
        if not streamed:
            return web.Response(body=b"x" * size)
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, size, 1000):
            await response.write(b"x" * min(1000, size - start))
        await response.write_eof()
        return response

    return answer


async def hang(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.json_response({})


async def reset(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()  # the request arrived; the connection dies before any answer
    await asyncio.sleep(5)
    return web.json_response({})


@dataclass
class Provider:
    url: str
    script: deque[Answer]
    received: list[str]
    arrived: asyncio.Event


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    script: deque[Answer] = deque()
    received: list[str] = []
    arrived = asyncio.Event()

    async def scripted(request: web.Request) -> web.StreamResponse:
        received.append(request.method)
        arrived.set()
        return await script.popleft()(request)

    application = web.Application()
    application.router.add_route("*", "/v1/thing", scripted)
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Provider(f"http://127.0.0.1:{port}", script, received, arrived)
    await runner.cleanup()


async def failed_call(url: str, method: str, policy: ProviderPolicy) -> tuple[ProviderError, CollectorRegistry]:
    registry = CollectorRegistry()
    async with ProviderClient("acme", url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderError) as raised:
            await client.request(method, "/v1/thing")
    return raised.value, registry


ONCE = ProviderPolicy(max_attempts=1, read_timeout=0.2, deadline=5)


def counted(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value("provider_calls_total", {"provider": "acme", "outcome": outcome})


@pytest.mark.parametrize(
    ("answer", "kind", "words", "outcome"),
    [
        (status(503), ProviderUnavailableError, "acme: answered 503", "unavailable"),
        (status(500), ProviderUnavailableError, "acme: answered 500", "unavailable"),
        (status(408), ProviderUnavailableError, "acme: answered 408", "unavailable"),
        (status(409), ProviderRejectedError, "acme: rejected with 409", "rejected"),  # retried, not a failure of it
        (status(400), ProviderRejectedError, "acme: rejected with 400", "rejected"),  # never retried
    ],
)
async def test_a_status_that_ends_the_call_is_reported_by_what_it_says(
    provider: Provider, answer: Answer, kind: type[ProviderError], words: str, outcome: str
) -> None:
    provider.script.append(answer)
    error, registry = await failed_call(provider.url, "GET", ONCE)
    assert type(error) is kind
    assert str(error) == words
    assert error.attempts == 1
    assert counted(registry, outcome) == 1
    if isinstance(error, ProviderRejectedError):
        assert (error.status, error.body) == (int(words[-3:]), b'{"status": %d}' % error.status)


async def test_a_429_at_the_last_attempt_is_rate_limited_with_its_retry_after(provider: Provider) -> None:
    provider.script.extend([status(429, {"Retry-After": "0"}), status(429, {"Retry-After": "7"})])
    policy = ProviderPolicy(max_attempts=2, read_timeout=0.2, deadline=5, backoff_base=0, backoff_cap=0)
    error, registry = await failed_call(provider.url, "GET", policy)
    assert type(error) is ProviderRateLimitedError
    assert str(error) == "acme: rate limited"
    assert (error.attempts, error.retry_after) == (2, 7.0)
    assert counted(registry, "rate_limited") == 1
    assert registry.get_sample_value("provider_attempts_total", {"provider": "acme", "result": "429"}) == 2


@pytest.mark.parametrize(("method", "may_have_succeeded"), [("POST", True), ("GET", False)])
async def test_no_answer_in_time_says_whether_the_request_may_have_acted(
    provider: Provider, method: str, may_have_succeeded: bool
) -> None:
    provider.script.append(hang)
    error, registry = await failed_call(provider.url, method, ONCE)
    assert type(error) is ProviderTimeoutError
    assert str(error) == "acme: no answer in time"
    assert (error.attempts, error.may_have_succeeded) == (1, may_have_succeeded)
    assert counted(registry, "timeout") == 1
    assert registry.get_sample_value("provider_attempts_total", {"provider": "acme", "result": "timeout"}) == 1


async def test_a_connection_lost_after_a_post_was_sent_leaves_its_outcome_unknown(provider: Provider) -> None:
    provider.script.append(reset)
    error, registry = await failed_call(provider.url, "POST", ONCE)
    assert type(error) is OutcomeUnknownError
    assert str(error) == "acme: the connection failed after the request was sent"
    assert error.attempts == 1
    assert counted(registry, "outcome_unknown") == 1
    assert provider.received == ["POST"]


async def test_a_connection_lost_after_a_get_is_the_provider_unavailable(provider: Provider) -> None:
    provider.script.extend([reset, reset])
    error, registry = await failed_call(provider.url, "GET", ONCE)
    assert type(error) is ProviderUnavailableError
    assert str(error) == "acme: the connection failed"
    assert error.attempts == 1
    assert provider.received == ["GET", "GET"]  # aiohttp itself sends an idempotent request again, once
    assert counted(registry, "unavailable") == 1
    assert registry.get_sample_value("provider_attempts_total", {"provider": "acme", "result": "transport_error"}) == 1


async def test_a_provider_that_cannot_be_reached_is_unavailable_after_each_attempt() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    policy = ProviderPolicy(max_attempts=2, deadline=5, backoff_base=0, backoff_cap=0)
    error, registry = await failed_call(nobody, "POST", policy)  # nothing was sent: retried even without a key
    assert type(error) is ProviderUnavailableError
    assert str(error) == "acme: could not connect"
    assert error.attempts == 2
    assert counted(registry, "unavailable") == 1
    assert registry.get_sample_value("provider_attempts_total", {"provider": "acme", "result": "connect_error"}) == 2


async def test_a_call_refused_by_the_open_breaker_is_counted_as_circuit_open_and_sends_nothing(
    provider: Provider,
) -> None:
    provider.script.append(status(503))
    policy = ProviderPolicy(max_attempts=1, breaker_window=1, breaker_minimum_calls=1, breaker_failure_rate=1)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderUnavailableError):
            await client.request("GET", "/v1/thing")
        with pytest.raises(CircuitOpenError) as refused:
            await client.request("GET", "/v1/thing")
    assert refused.value.attempts == 0
    assert (counted(registry, "unavailable"), counted(registry, "circuit_open")) == (1, 1)
    assert provider.received == ["GET"]


async def test_a_call_over_the_bulkhead_fails_fast_as_busy(provider: Provider) -> None:
    provider.script.append(hang)
    policy = ProviderPolicy(max_attempts=1, read_timeout=1, bulkhead_limit=1, bulkhead_max_wait=0)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        first = asyncio.create_task(client.request("GET", "/v1/thing"))
        await provider.arrived.wait()
        with pytest.raises(ProviderBusyError) as refused:
            await client.request("GET", "/v1/thing")
        with pytest.raises(ProviderTimeoutError):
            await first
    assert str(refused.value) == "acme: too many calls in flight"
    assert refused.value.attempts == 0
    assert counted(registry, "busy") == 1
    assert registry.get_sample_value("provider_bulkhead_rejections_total", {"provider": "acme"}) == 1
    assert provider.received == ["GET"]


async def test_a_call_that_would_wait_for_the_rate_past_its_deadline_fails_as_busy(provider: Provider) -> None:
    provider.script.append(status(200))
    policy = ProviderPolicy(max_attempts=1, rate_per_second=0.5, rate_burst=1)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        assert (await client.request("GET", "/v1/thing")).status == 200
        with pytest.raises(ProviderBusyError) as refused:
            await client.request("GET", "/v1/thing", deadline=0.1)
    assert str(refused.value) == "acme: the outbound rate is spent until the deadline"
    assert refused.value.attempts == 0
    assert counted(registry, "busy") == 1
    waited = registry.get_sample_value("provider_limiter_wait_seconds_sum", {"provider": "acme"}) or 0
    assert 0.05 < waited < 1  # it waited, until the deadline and no longer
    assert provider.received == ["GET"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_not(
    provider: Provider, streamed: bool
) -> None:
    provider.script.extend([body_of(5000, streamed=streamed), body_of(5001, streamed=streamed)])
    policy = ProviderPolicy(max_attempts=1, max_response_bytes=5000)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        assert (await client.request("GET", "/v1/thing")).body == b"x" * 5000
        with pytest.raises(ProviderResponseTooLargeError) as refused:
            await client.request("POST", "/v1/thing")
    assert str(refused.value) == "acme: the answer is larger than 5000 bytes"
    assert (refused.value.attempts, refused.value.may_have_succeeded) == (1, True)  # a POST that was answered
    assert (counted(registry, "success"), counted(registry, "too_large")) == (1, 1)
    assert registry.get_sample_value("provider_attempts_total", {"provider": "acme", "result": "too_large"}) == 1


async def test_a_get_whose_answer_is_too_large_cannot_have_acted(provider: Provider) -> None:
    provider.script.append(body_of(20, streamed=False))
    error, _ = await failed_call(provider.url, "GET", ProviderPolicy(max_attempts=1, max_response_bytes=10))
    assert type(error) is ProviderResponseTooLargeError
    assert not error.may_have_succeeded

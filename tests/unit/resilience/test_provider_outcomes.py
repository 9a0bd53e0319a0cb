"""How a provider call that fails for good is reported: the error that says what happened (and whether a request
sent may have acted), the attempts it took, and the outcome it is counted under. Against a provider served in this
process over real HTTP, answering what each test scripts."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time

import pytest
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
from tests.support.scripted_provider import PATH, Answer, Provider, body_of, hang, reset, status


async def failed_call(url: str, method: str, policy: ProviderPolicy) -> tuple[ProviderError, CollectorRegistry]:
    registry = CollectorRegistry()
    async with ProviderClient("acme", url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderError) as raised:
            await client.request(method, PATH)
    return raised.value, registry


ONCE = ProviderPolicy(max_attempts=1, read_timeout=0.2, deadline=5)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"provider": "acme", **labels})


def counted(registry: CollectorRegistry, outcome: str) -> float | None:
    return sample(registry, "provider_calls_total", outcome=outcome)


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
    assert sample(registry, "provider_attempts_total", result="429") == 2


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
    assert sample(registry, "provider_attempts_total", result="timeout") == 1


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
    assert sample(registry, "provider_attempts_total", result="transport_error") == 1


async def test_a_provider_that_cannot_be_reached_is_unavailable_after_each_attempt() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    policy = ProviderPolicy(max_attempts=2, deadline=5, backoff_base=0, backoff_cap=0)
    error, registry = await failed_call(nobody, "POST", policy)  # nothing was sent: retried even without a key
    assert type(error) is ProviderUnavailableError
    assert str(error) == "acme: could not connect"
    assert error.attempts == 2
    assert counted(registry, "unavailable") == 1
    assert sample(registry, "provider_attempts_total", result="connect_error") == 2


async def test_a_call_refused_by_the_open_breaker_is_counted_as_circuit_open_and_sends_nothing(
    provider: Provider,
) -> None:
    provider.script.append(status(503))
    policy = ProviderPolicy(max_attempts=1, breaker_window=1, breaker_minimum_calls=1, breaker_failure_rate=1)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderUnavailableError):
            await client.request("GET", PATH)
        with pytest.raises(CircuitOpenError) as refused:
            await client.request("GET", PATH)
    assert refused.value.attempts == 0
    assert (counted(registry, "unavailable"), counted(registry, "circuit_open")) == (1, 1)
    assert provider.received == ["GET"]


async def test_a_call_over_the_bulkhead_fails_fast_as_busy(provider: Provider) -> None:
    provider.script.append(hang)
    policy = ProviderPolicy(max_attempts=1, read_timeout=1, bulkhead_limit=1, bulkhead_max_wait=0)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        first = asyncio.create_task(client.request("GET", PATH))
        await provider.arrived.wait()
        for _ in range(2):
            with pytest.raises(ProviderBusyError) as refused:
                await client.request("GET", PATH)
        with pytest.raises(ProviderTimeoutError):
            await first
    assert str(refused.value) == "acme: too many calls in flight"
    assert refused.value.attempts == 0
    assert counted(registry, "busy") == 2
    assert sample(registry, "provider_bulkhead_rejections_total") == 2
    assert provider.received == ["GET"]


async def test_a_call_that_would_wait_for_the_rate_past_its_deadline_fails_as_busy(provider: Provider) -> None:
    provider.script.append(status(200))
    policy = ProviderPolicy(max_attempts=1, rate_per_second=0.5, rate_burst=1)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        assert (await client.request("GET", PATH)).status == 200
        with pytest.raises(ProviderBusyError) as refused:
            await client.request("GET", PATH, deadline=0.1)
    assert str(refused.value) == "acme: the outbound rate is spent until the deadline"
    assert refused.value.attempts == 0
    assert counted(registry, "busy") == 1
    waited = sample(registry, "provider_limiter_wait_seconds_sum") or 0
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
        assert (await client.request("GET", PATH)).body == b"x" * 5000
        with pytest.raises(ProviderResponseTooLargeError) as refused:
            await client.request("POST", PATH)
    assert str(refused.value) == "acme: the answer is larger than 5000 bytes"
    assert (refused.value.attempts, refused.value.may_have_succeeded) == (1, True)  # a POST that was answered
    assert (counted(registry, "success"), counted(registry, "too_large")) == (1, 1)
    assert sample(registry, "provider_attempts_total", result="too_large") == 1


async def test_a_get_whose_answer_is_too_large_cannot_have_acted(provider: Provider) -> None:
    provider.script.append(body_of(20, streamed=False))
    error, _ = await failed_call(provider.url, "GET", ProviderPolicy(max_attempts=1, max_response_bytes=10))
    assert type(error) is ProviderResponseTooLargeError
    assert not error.may_have_succeeded


class MaxJitter(random.Random):
    """Backoff that always waits the whole of its range: a retry comes exactly when the test expects it."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.requirement("NFR-2")
async def test_a_call_whose_deadline_passed_before_its_attempt_sends_nothing(provider: Provider) -> None:
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, ONCE, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderTimeoutError) as refused:
            await client.request("POST", PATH, deadline=0)
    assert str(refused.value) == "acme: the deadline passed before the attempt"
    assert (refused.value.attempts, refused.value.may_have_succeeded) == (0, False)
    assert counted(registry, "timeout") == 1
    assert provider.received == []


async def test_a_breaker_that_opens_between_attempts_ends_the_call_with_the_attempts_made(provider: Provider) -> None:
    provider.script.append(status(503))
    policy = ProviderPolicy(breaker_window=1, breaker_minimum_calls=1, breaker_failure_rate=1, backoff_base=0)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(CircuitOpenError) as refused:
            await client.request("GET", PATH)
    assert re.fullmatch(r"acme: circuit open; the next trial in \d\.\d\d s", str(refused.value)), refused.value
    assert refused.value.attempts == 1
    assert provider.received == ["GET"]


@pytest.mark.parametrize(("code", "opens"), [(500, True), (503, True), (408, True), (409, False), (429, False)])
@pytest.mark.requirement("NFR-2")
async def test_a_5xx_or_408_counts_against_the_breaker_and_other_statuses_do_not(
    provider: Provider, code: int, opens: bool
) -> None:
    provider.script.extend([status(code), status(200)])
    policy = ProviderPolicy(max_attempts=1, breaker_window=1, breaker_minimum_calls=1, breaker_failure_rate=1)
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(CollectorRegistry())) as client:
        with pytest.raises(ProviderError):
            await client.request("GET", PATH)
        if opens:
            with pytest.raises(CircuitOpenError):
                await client.request("GET", PATH)
        else:
            assert (await client.request("GET", PATH)).status == 200
    assert len(provider.received) == (1 if opens else 2)


@pytest.mark.requirement("NFR-2")
async def test_the_breaker_judges_the_policys_window_of_calls_not_every_call(provider: Provider) -> None:
    provider.script.extend([status(200)] * 4 + [status(503)] * 2)
    policy = ProviderPolicy(max_attempts=1, breaker_window=4, breaker_minimum_calls=4, breaker_failure_rate=0.5)
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(CollectorRegistry())) as client:
        for _ in range(4):
            await client.request("GET", PATH)
        for _ in range(2):
            with pytest.raises(ProviderUnavailableError):
                await client.request("GET", PATH)
        with pytest.raises(CircuitOpenError):  # the last four calls: two failed (of six, a third)
            await client.request("GET", PATH)
    assert len(provider.received) == 6


@pytest.mark.requirement("NFR-6")
async def test_each_breaker_state_change_is_counted(provider: Provider) -> None:
    provider.script.extend([status(503), status(200), status(503)])
    policy = ProviderPolicy(
        max_attempts=1, breaker_window=1, breaker_minimum_calls=1, breaker_failure_rate=1,
        breaker_open_seconds=0.05, breaker_half_open_calls=1,
    )  # fmt: skip
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderUnavailableError):
            await client.request("GET", PATH)  # closed -> open
        await asyncio.sleep(0.1)  # the open period is the behaviour here
        await client.request("GET", PATH)  # open -> half-open, whose trial passes: -> closed
        with pytest.raises(ProviderUnavailableError):
            await client.request("GET", PATH)  # closed -> open again

    def moves(from_state: str, to_state: str) -> float | None:
        return sample(registry, "provider_breaker_transitions_total", from_state=from_state, to_state=to_state)

    assert (moves("closed", "open"), moves("open", "half_open"), moves("half_open", "closed")) == (2, 1, 1)
    assert sample(registry, "provider_breaker_state") == 2


@pytest.mark.requirement("NFR-6")
async def test_each_retry_and_each_retry_the_budget_refused_is_counted(provider: Provider) -> None:
    provider.script.extend([status(503), status(503), status(200)])
    policy = ProviderPolicy(backoff_base=0, backoff_cap=0)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry)) as client:
        assert (await client.request("GET", PATH)).attempts == 3
    assert sample(registry, "provider_retries_total") == 2

    provider.script.extend([status(503), status(503)])
    spent = ProviderPolicy(budget_ratio=0, budget_minimum=0, backoff_base=0, backoff_cap=0)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, spent, ProviderMetrics(registry)) as client:
        for _ in range(2):
            with pytest.raises(ProviderUnavailableError) as refused:
                await client.request("GET", PATH)
            assert refused.value.attempts == 1
    assert sample(registry, "provider_retry_budget_exhausted_total") == 2
    assert sample(registry, "provider_retries_total") == 0


async def test_a_retry_refused_for_a_place_says_how_many_attempts_were_made(provider: Provider) -> None:
    provider.script.extend([status(503), hang])
    policy = ProviderPolicy(read_timeout=1, bulkhead_limit=1, bulkhead_max_wait=0, backoff_base=0.3, backoff_cap=0.3)
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(registry), rng=MaxJitter()) as client:
        retried = asyncio.create_task(client.request("GET", PATH))
        async with asyncio.timeout(2):
            # its first attempt answered and left its place: the client offers no event for that, only its count
            while sample(registry, "provider_retries_total") != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        provider.arrived.clear()
        holder = asyncio.create_task(client.request("GET", PATH))  # takes the place while the first backs off
        await provider.arrived.wait()
        with pytest.raises(ProviderBusyError) as refused:
            await retried
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
    assert refused.value.attempts == 1
    assert sample(registry, "provider_bulkhead_rejections_total") == 1


async def test_a_retry_refused_for_the_rate_says_how_many_attempts_were_made(provider: Provider) -> None:
    provider.script.append(status(503))
    policy = ProviderPolicy(rate_per_second=0.1, rate_burst=1, backoff_base=0, backoff_cap=0, deadline=0.3)
    async with ProviderClient("acme", provider.url, policy, ProviderMetrics(CollectorRegistry())) as client:
        with pytest.raises(ProviderBusyError) as refused:
            await client.request("GET", PATH)
    assert str(refused.value) == "acme: the outbound rate is spent until the deadline"
    assert refused.value.attempts == 1


@pytest.mark.parametrize("ending", ["success", "rejected", "cancelled"])
async def test_a_calls_duration_is_the_time_it_took(provider: Provider, ending: str) -> None:
    provider.script.append({"success": status(200), "rejected": status(400), "cancelled": hang}[ending])
    registry = CollectorRegistry()
    async with ProviderClient("acme", provider.url, ONCE, ProviderMetrics(registry)) as client:
        began = time.monotonic()
        call = asyncio.create_task(client.request("GET", PATH))
        if ending == "cancelled":
            await provider.arrived.wait()
            call.cancel()
        with contextlib.suppress(ProviderError, asyncio.CancelledError):
            await call
        took = time.monotonic() - began
    assert sample(registry, "provider_call_duration_seconds_count", outcome=ending) == 1
    assert 0 < (sample(registry, "provider_call_duration_seconds_sum", outcome=ending) or 0) <= took

"""NFR-2 and NFR-4 outbound, against the real payments simulator: timeouts and deadlines, retries and their
spacing, Retry-After, what is never retried, the circuit breaker, the retry budget, bulkhead and rate limiter."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from app.src.api.common.providers import (
    CircuitOpenError,
    OutcomeUnknownError,
    ProviderBusyError,
    ProviderRateLimitedError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from app.src.utils.logs import configure_logging, request_id_var
from simulators.client import SimulatorClient
from tests.chaos.conftest import ClientFactory
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.chaos
CHARGE = {"amount": 500, "currency": "eur", "customer": "cus_chaos"}
SLOW = {"kind": "latency", "distribution": {"type": "fixed", "ms": 3000}}


async def until_received(sim: SimulatorClient, count: int, within: float = 5) -> None:
    """Until the simulator's journal holds `count` requests: what a call in another task has sent by now is
    visible only there (polled every 10 ms, for at most `within` seconds)."""
    async with asyncio.timeout(within):
        while await sim.journal_count() < count:  # noqa: ASYNC110 - the state is in the simulator, not here
            await asyncio.sleep(0.01)


async def journal_times(sim: SimulatorClient, **filters: Any) -> list[float]:
    return [entry["time"] for entry in await sim.journal(**filters)]


@pytest.mark.requirement("NFR-2")
async def test_latency_beyond_the_read_timeout_fails_as_a_timeout_well_within_the_deadline(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="GET", action=SLOW)
    async with provider(read_timeout=0.2, deadline=5, max_attempts=1) as client:
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError) as raised:
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert time.monotonic() - started < 1.0
    assert raised.value.may_have_succeeded is False  # a GET changes nothing


@pytest.mark.requirement("NFR-2")
async def test_the_deadline_bounds_the_whole_call_with_its_retries(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="GET", action=SLOW)
    async with provider(read_timeout=0.4, deadline=1.0, max_attempts=10, backoff_base=0.01) as client:
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError):
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.5
    assert 2 <= await payments_sim.journal_count(method="GET") <= 3


@pytest.mark.requirement("NFR-2")
async def test_a_deadline_over_five_seconds_is_not_rounded_up_to_a_whole_second(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    slower = {"kind": "latency", "distribution": {"type": "fixed", "ms": 7000}}
    await payments_sim.add_fault(route="/v1/charges", method="GET", action=slower)
    loop = asyncio.get_running_loop()
    async with provider(read_timeout=20, deadline=5.5, max_attempts=1) as client:
        await asyncio.sleep(1.1 - loop.time() % 1)  # start just past a whole second: rounding would add ~0.4 s
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError):
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert 5.5 <= time.monotonic() - started < 5.8


@pytest.mark.requirement("NFR-2")
async def test_the_deadline_also_covers_the_wait_for_the_outbound_rate(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    async with provider(rate_per_second=1, rate_burst=1, deadline=1.5, read_timeout=5, max_attempts=1) as client:
        await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)  # spends the rate for 1 s
        await payments_sim.add_fault(route="/v1/charges", method="GET", action=SLOW)
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError):
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 1.9  # about 1 s waiting for the rate, then the rest of the 1.5 s deadline


@pytest.mark.requirement("NFR-2")
async def test_two_503s_then_success_is_a_success_after_three_attempts_spaced_by_the_backoff(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="POST", status=503, times=2)
    async with provider(backoff_base=0.2, backoff_cap=1.0) as client:
        response = await client.request(
            "POST", "/v1/charges", json=CHARGE, idempotency_key="order-1", headers=payments_sim.scope_headers
        )
    assert (response.status, response.attempts) == (200, 3)
    first, second, third = await journal_times(payments_sim, method="POST", header="Idempotency-Key:order-1")
    slack = 0.15  # the exchange itself, on a busy machine
    assert second - first <= 0.2 + slack  # full jitter after attempt 1: within [0, 0.2]
    assert third - second <= 0.4 + slack  # after attempt 2: within [0, 0.4]


@pytest.mark.requirement("NFR-2")
async def test_retry_after_is_honoured_never_earlier(provider: ClientFactory, payments_sim: SimulatorClient) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="GET", status=429, retry_after=2, times=1)
    async with provider(backoff_base=0.01) as client:
        response = await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert response.status == 200
    first, second = await journal_times(payments_sim, method="GET")
    assert second - first >= 1.99


@pytest.mark.requirement("NFR-2")
async def test_retry_after_beyond_the_deadline_is_a_rate_limited_error_without_retry(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="GET", status=429, retry_after=30)
    async with provider(deadline=2) as client:
        started = time.monotonic()
        with pytest.raises(ProviderRateLimitedError) as raised:
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert time.monotonic() - started < 1
    assert raised.value.retry_after == 30
    assert await payments_sim.journal_count() == 1


@pytest.mark.requirement("NFR-2")
async def test_a_400_is_not_retried(provider: ClientFactory, payments_sim: SimulatorClient) -> None:
    async with provider() as client:
        with pytest.raises(ProviderRejectedError) as raised:
            await client.request(
                "POST",
                "/v1/charges",
                json={**CHARGE, "amount": -1},
                idempotency_key="k",
                headers=payments_sim.scope_headers,
            )
    assert raised.value.status == 400
    assert b"invalid_request_error" in raised.value.body
    assert await payments_sim.journal_count() == 1


@pytest.mark.requirement("NFR-2")
async def test_the_retried_methods_and_failures_are_the_policys(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="GET", status=503, times=1)
    async with provider(retry_methods=["HEAD"], backoff_base=0.01) as client:
        with pytest.raises(ProviderUnavailableError) as unavailable:
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert unavailable.value.attempts == 1  # a GET, but not among this provider's retried methods
    await payments_sim.add_fault(route="/v1/charges", method="GET", action=SLOW, times=1)
    async with provider(retry_failures=["connect", "transport"], read_timeout=0.2, backoff_base=0.01) as client:
        with pytest.raises(ProviderTimeoutError) as timed_out:
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert timed_out.value.attempts == 1  # timeouts are not retried for this provider
    assert await payments_sim.journal_count(method="GET") == 2


@pytest.mark.requirement("NFR-2")
async def test_a_post_without_idempotency_key_is_not_retried_after_a_reset_and_its_outcome_is_unknown(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="POST", action={"kind": "reset"}, times=1)
    async with provider() as client:
        with pytest.raises(OutcomeUnknownError):
            await client.request("POST", "/v1/charges", json=CHARGE, headers=payments_sim.scope_headers)
    assert await payments_sim.journal_count() == 1


@pytest.mark.requirement("NFR-2")
async def test_a_keyed_post_is_retried_after_a_reset_and_charges_once(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", method="POST", action={"kind": "drop_after_commit"}, times=1)
    async with provider(backoff_base=0.01) as client:
        response = await client.request(
            "POST", "/v1/charges", json=CHARGE, idempotency_key="once", headers=payments_sim.scope_headers
        )
    assert (response.status, response.headers.get("Idempotent-Replayed")) == (200, "true")
    listing = await payments_sim.journal(method="POST")
    assert len(listing) == 2


def breaker_policy(calls: int, open_seconds: float) -> dict[str, Any]:
    """Open after `calls` failed calls in a row, for `open_seconds`, then one trial; no retries."""
    return {
        "max_attempts": 1,
        "breaker_window": calls,
        "breaker_minimum_calls": calls,
        "breaker_open_seconds": open_seconds,
        "breaker_half_open_calls": 1,
    }


async def fail_until_open(client: ProviderClient, sim: SimulatorClient, calls: int) -> None:
    down = await sim.add_fault(route="/v1/charges", status=503)
    for _ in range(calls):
        with pytest.raises(ProviderUnavailableError):
            await client.request("GET", "/v1/charges", headers=sim.scope_headers)
    await sim.remove_fault(down["id"])
    assert client.breaker.state.name == "OPEN"


@pytest.mark.requirement("NFR-2")
async def test_the_breaker_opens_fails_fast_then_half_opens_and_closes_on_success(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    async with provider(**breaker_policy(calls=4, open_seconds=0.5)) as client:
        await fail_until_open(client, payments_sim, calls=4)
        started = time.monotonic()
        with pytest.raises(CircuitOpenError):
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
        assert time.monotonic() - started < 0.1
        assert await payments_sim.journal_count() == 4  # the fast failure never reached the provider
        await asyncio.sleep(0.5)  # the open duration is the behaviour under test
        response = await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
        assert response.status == 200
        assert client.breaker.state.name == "CLOSED"


@pytest.mark.requirement("NFR-2")
async def test_a_cancelled_half_open_trial_hands_its_permit_back(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    async with provider(**breaker_policy(calls=2, open_seconds=0.3)) as client:
        await fail_until_open(client, payments_sim, calls=2)
        hang = await payments_sim.add_fault(route="/v1/charges", action={"kind": "hang", "seconds": 30})
        await asyncio.sleep(0.3)
        trial = asyncio.create_task(client.request("GET", "/v1/charges", headers=payments_sim.scope_headers))
        await until_received(payments_sim, 3)  # the trial has reached the provider
        assert client.breaker.state.name == "HALF_OPEN"
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        await payments_sim.remove_fault(hang["id"])
        response = await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
        assert response.status == 200  # the only trial permit came back with the cancellation
        assert client.breaker.state.name == "CLOSED"


@pytest.mark.requirement("NFR-2")
async def test_the_retry_budget_bounds_attempts_when_everything_fails(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", status=503)
    calls = 30
    policy = {"max_attempts": 3, "backoff_base": 0.01, "budget_ratio": 0.2, "budget_minimum": 3,
              "breaker_window": 200, "breaker_minimum_calls": 200}  # fmt: skip
    async with provider(**policy) as client:
        results = await asyncio.gather(
            *(client.request("GET", "/v1/charges", headers=payments_sim.scope_headers) for _ in range(calls)),
            return_exceptions=True,
        )
    assert all(isinstance(result, ProviderUnavailableError) for result in results)
    attempts = await payments_sim.journal_count()
    assert calls < attempts <= calls + max(3, 0.2 * calls)  # a naive client would have made 90


@pytest.mark.requirement("NFR-4")
async def test_the_bulkhead_fails_fast_beyond_its_limit_when_the_provider_hangs(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    await payments_sim.add_fault(route="/v1/charges", action={"kind": "hang", "seconds": 30})
    async with provider(bulkhead_limit=2, bulkhead_max_wait=0.05, deadline=20, read_timeout=20) as client:
        hanging = [
            asyncio.create_task(client.request("GET", "/v1/charges", headers=payments_sim.scope_headers))
            for _ in range(2)
        ]
        await until_received(payments_sim, 2)
        started = time.monotonic()
        with pytest.raises(ProviderBusyError):
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
        assert time.monotonic() - started < 0.5
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)
    assert await payments_sim.journal_count() == 2


@pytest.mark.requirement("NFR-4")
async def test_the_rate_limiter_keeps_a_burst_under_the_configured_rate(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    async with provider(rate_per_second=5, rate_burst=1) as client:
        await asyncio.gather(
            *(client.request("GET", "/v1/charges", headers=payments_sim.scope_headers) for _ in range(8))
        )
    times = sorted(await journal_times(payments_sim))
    assert len(times) == 8
    # 5 a second: any 6 consecutive requests span at least a second (less a little clock noise)
    assert all(times[index + 5] - times[index] >= 0.95 for index in range(len(times) - 5))


@pytest.mark.requirement("NFR-6")
async def test_provider_calls_carry_the_request_id_and_are_counted_in_metrics(
    payments_sim: SimulatorClient,
) -> None:
    registry = CollectorRegistry()
    policy = ProviderPolicy(backoff_base=0.01)
    await payments_sim.add_fault(route="/v1/charges", status=503, times=1)
    async with ProviderClient(
        "payments", payments_sim.base_url, policy, ProviderMetrics(registry), api_key=API_KEY
    ) as client:
        await client.request("GET", "/v1/charges", request_id="req-abc", headers=payments_sim.scope_headers)
    assert [entry["headers"]["x-request-id"] for entry in await payments_sim.journal()] == ["req-abc", "req-abc"]
    exposition = generate_latest(registry).decode()
    assert 'provider_calls_total{outcome="success",provider="payments"} 1.0' in exposition
    assert 'provider_attempts_total{provider="payments",result="503"} 1.0' in exposition
    assert 'provider_attempts_total{provider="payments",result="200"} 1.0' in exposition
    assert 'provider_retries_total{provider="payments"} 1.0' in exposition
    assert 'provider_breaker_state{provider="payments"} 0.0' in exposition


@pytest.mark.requirement("NFR-6")
async def test_a_call_its_caller_cancels_is_counted_as_cancelled(payments_sim: SimulatorClient) -> None:
    registry = CollectorRegistry()
    await payments_sim.add_fault(route="/v1/charges", action={"kind": "hang", "seconds": 30})
    async with ProviderClient(
        "payments", payments_sim.base_url, ProviderPolicy(), ProviderMetrics(registry), api_key=API_KEY
    ) as client:
        call = asyncio.create_task(client.request("GET", "/v1/charges", headers=payments_sim.scope_headers))
        await until_received(payments_sim, 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    exposition = generate_latest(registry).decode()
    assert 'provider_calls_total{outcome="cancelled",provider="payments"} 1.0' in exposition
    assert 'provider_calls_total{outcome="success"' not in exposition
    assert 'provider_attempts_total{provider="payments",result="error"} 1.0' in exposition


@pytest.mark.requirement("NFR-6")
@pytest.mark.usefixtures("logs_back_to_stdout")
async def test_each_attempt_writes_one_log_line_with_the_request_id(payments_sim: SimulatorClient) -> None:
    lines = io.StringIO()
    configure_logging("INFO", "json", stream=lines)  # before the client: its logger binds to the stream now
    await payments_sim.add_fault(route="/v1/charges", method="GET", status=503, times=2)
    async with ProviderClient(
        "payments", payments_sim.base_url, ProviderPolicy(backoff_base=0.01), ProviderMetrics(), api_key=API_KEY
    ) as client:
        await client.request("GET", "/v1/charges", request_id="req-log", headers=payments_sim.scope_headers)
    assert request_id_var.get() is None  # the call's own request id did not outlive it
    attempts = [line for line in map(json.loads, lines.getvalue().splitlines()) if line["event"] == "provider attempt"]
    assert [(line["attempt"], line["result"]) for line in attempts] == [(1, "503"), (2, "503"), (3, "200")]
    assert {
        (line["logger"], line["provider"], line["method"], line["path"], line["request_id"], line["level"])
        for line in attempts
    } == {("provider", "payments", "GET", "/v1/charges", "req-log", "info")}
    for line in attempts:  # milliseconds, to two places: an exchange over loopback takes more than 0.01 ms
        assert isinstance(line["duration_ms"], float)
        assert 0 < line["duration_ms"] < 5000
        assert round(line["duration_ms"], 2) == line["duration_ms"]

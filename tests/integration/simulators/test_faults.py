"""Each fault as a real HTTP client experiences it, plus the journal, decisions, clock and control API."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from simulators.client import SimulatorClient, SimulatorError

CHARGE = {"amount": 700, "currency": "eur", "customer": "cus_7"}


async def charge(
    http: aiohttp.ClientSession, sim: SimulatorClient, headers: dict[str, str], within: float = 10
) -> tuple[int, Any]:
    async with http.post(
        sim.base_url + "/v1/charges", json=CHARGE, headers=headers, timeout=aiohttp.ClientTimeout(total=within)
    ) as response:
        return response.status, await response.read()


async def committed(http: aiohttp.ClientSession, sim: SimulatorClient, headers: dict[str, str], key: str) -> int:
    async with http.get(f"{sim.base_url}/v1/charges?idempotency_key={key}", headers=headers) as response:
        return len((await response.json())["data"])


async def test_status_fault_answers_instead_of_the_provider_with_retry_after(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async with (
        payments_sim.fault(route="/v1/charges", status=503, retry_after=2, times=1),
        http.post(payments_sim.base_url + "/v1/charges", json=CHARGE, headers=headers) as response,
    ):
        assert (response.status, response.headers["Retry-After"]) == (503, "2")
    assert (await charge(http, payments_sim, headers))[0] == 200
    entries = await payments_sim.journal(path="/v1/charges")
    assert [(entry["status"], entry["fault"]) for entry in entries] == [(503, "status"), (200, None)]


async def test_connection_reset_is_a_transport_error_and_nothing_is_charged(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    keyed = {**headers, "Idempotency-Key": "reset-1"}
    async with payments_sim.fault(route="/v1/charges", action={"kind": "reset"}, times=1):
        with pytest.raises(aiohttp.ClientOSError, match="reset"):
            await charge(http, payments_sim, keyed)
    assert await committed(http, payments_sim, headers, "reset-1") == 0


async def test_succeed_then_drop_leaves_the_charge_committed_but_unseen(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    keyed = {**headers, "Idempotency-Key": "drop-1"}
    async with payments_sim.fault(route="/v1/charges", action={"kind": "drop_after_commit"}, times=1):
        with pytest.raises(aiohttp.ClientError):
            await charge(http, payments_sim, keyed)
    assert await committed(http, payments_sim, headers, "drop-1") == 1
    status, _ = await charge(http, payments_sim, keyed)  # the retry replays, it does not charge again
    assert status == 200
    assert await committed(http, payments_sim, headers, "drop-1") == 1


@pytest.mark.parametrize(
    ("kind", "transport_error"),
    [("empty", aiohttp.ServerDisconnectedError), ("truncated", aiohttp.ClientPayloadError)],
    ids=["empty response: server disconnected", "truncated body: payload error"],
)
async def test_a_connection_fault_is_the_transport_error_a_client_sees(
    http: aiohttp.ClientSession,
    payments_sim: SimulatorClient,
    headers: dict[str, str],
    kind: str,
    transport_error: type[Exception],
) -> None:
    async with payments_sim.fault(route="/v1/charges", action={"kind": kind}, times=1):
        with pytest.raises(transport_error):
            await charge(http, payments_sim, headers)


async def test_malformed_body_is_valid_http_but_not_json(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async with payments_sim.fault(route="/v1/charges", action={"kind": "malformed"}, times=1):
        status, body = await charge(http, payments_sim, headers)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_slow_body_arrives_whole_over_the_given_time(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async with payments_sim.fault(route="/v1/charges", action={"kind": "slow_body", "seconds": 0.6}, times=1):
        started = time.monotonic()
        status, body = await charge(http, payments_sim, headers)
    assert time.monotonic() - started >= 0.5
    assert (status, json.loads(body)["amount"]) == (200, 700)


async def test_hang_never_answers_so_the_client_times_out(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async with payments_sim.fault(route="/v1/charges", action={"kind": "hang"}, times=1):
        with pytest.raises(TimeoutError):
            await charge(http, payments_sim, headers, within=0.3)


async def test_latency_before_delays_the_answer(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    delay = {"kind": "latency", "distribution": {"type": "fixed", "ms": 300}}
    async with payments_sim.fault(route="/v1/charges", action=delay, times=1):
        started = time.monotonic()
        assert (await charge(http, payments_sim, headers))[0] == 200
    assert time.monotonic() - started >= 0.29


async def test_faults_of_one_scope_leave_other_scopes_alone(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async with payments_sim.fault(route="/v1/charges", status=500):
        assert (await charge(http, payments_sim, headers))[0] == 500
        other = {**headers, "X-Sim-Scope": headers["X-Sim-Scope"] + "-neighbour"}
        assert (await charge(http, payments_sim, other))[0] == 200


async def test_first_attempts_per_key_fail_then_the_same_key_succeeds(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await payments_sim.add_fault(route="/v1/charges", status=503, first_attempts_per_key=2)
    keyed = {**headers, "Idempotency-Key": "flaky-1"}
    assert [(await charge(http, payments_sim, keyed))[0] for _ in range(3)] == [503, 503, 200]


async def test_fault_with_a_ttl_expires_by_the_simulator_clock(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await payments_sim.add_fault(route="/v1/charges", status=502, ttl_seconds=60)
    assert (await charge(http, payments_sim, headers))[0] == 502
    await payments_sim.advance_clock(61)
    assert (await charge(http, payments_sim, headers))[0] == 200
    assert await payments_sim.faults() == []


async def test_rate_limit_answers_429_with_ratelimit_headers(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await payments_sim.add_fault(route="/v1/charges", action={"kind": "rate_limit", "rate": 0.5, "burst": 2})
    statuses = []
    for _ in range(3):
        async with http.post(payments_sim.base_url + "/v1/charges", json=CHARGE, headers=headers) as response:
            statuses.append(response.status)
            last = response
    assert statuses == [200, 200, 429]
    assert last.headers["Retry-After"] == "2"
    assert last.headers["RateLimit-Policy"] == '"sim";q=2;w=4'
    assert last.headers["RateLimit"] == '"sim";r=0;t=2'


async def test_journal_filters_and_counts_what_was_received(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await charge(http, payments_sim, {**headers, "Idempotency-Key": "j-1"})
    await charge(http, payments_sim, headers)
    async with http.get(payments_sim.base_url + "/v1/charges", headers=headers):
        pass
    assert await payments_sim.journal_count() == 3
    assert await payments_sim.journal_count(method="POST") == 2
    assert await payments_sim.journal_count(header="Idempotency-Key:j-1") == 1
    [entry] = await payments_sim.journal(header="idempotency-key:j-1")
    assert json.loads(entry["body"]) == CHARGE
    assert entry["headers"]["authorization"] == headers["Authorization"]
    await payments_sim.clear_journal()
    assert await payments_sim.journal_count() == 0


async def test_same_seed_and_requests_replay_the_same_decisions_over_http(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async def one_run() -> tuple[list[Any], list[int]]:
        await payments_sim.reset()
        await payments_sim.add_fault(route="/v1/charges", status=503, probability=0.4)
        statuses = [(await charge(http, payments_sim, headers))[0] for _ in range(30)]
        return await payments_sim.decisions(), statuses

    first_log, first_statuses = await one_run()
    second_log, second_statuses = await one_run()
    assert first_log == second_log
    assert first_statuses == second_statuses
    assert {503, 200} == set(first_statuses)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"route": "/v1/charges"}, "/action: Field required"),
        ({"action": {"kind": "status", "status": 700}}, "/action/status/status"),
        ({"action": {"kind": "reset"}, "probability": 2}, "/probability"),
        ({"action": {"kind": "reset"}, "colour": "red"}, "/colour: Extra inputs are not permitted"),
    ],
)
async def test_bad_control_input_is_a_400_problem_saying_what_is_wrong(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, body: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(SimulatorError) as raised:
        await payments_sim.send(payments_sim.calls.add_fault(body))
    assert raised.value.status == 400
    problem = json.loads(raised.value.body)
    assert problem["title"] == "Invalid control request"
    assert complaint in problem["detail"]
    async with http.post(payments_sim.base_url + "/__sim/faults", data=b"{not json") as response:
        assert response.status == 400
        assert response.headers["Content-Type"] == "application/problem+json"


async def test_clock_freezes_advances_and_resumes(payments_sim: SimulatorClient) -> None:
    frozen = await payments_sim.freeze_clock(at=1_900_000_000)
    assert frozen == {"now": 1_900_000_000, "frozen": True, "scope": payments_sim.scope}
    assert (await payments_sim.advance_clock(90))["now"] == 1_900_000_090
    resumed = await payments_sim.resume_clock()
    assert resumed["frozen"] is False
    assert resumed["now"] > 1_900_000_090
    await payments_sim.reset()  # resetting the scope puts its clock back on real time
    assert abs((await payments_sim.clock())["now"] - time.time()) < 5


async def test_moving_one_scopes_clock_leaves_the_others_on_real_time(
    payments_sim: SimulatorClient, simulator_urls: dict[str, str]
) -> None:
    await payments_sim.advance_clock(3600)
    async with SimulatorClient(simulator_urls["payments"], scope=f"{payments_sim.scope}-neighbour") as neighbour:
        assert abs((await neighbour.clock())["now"] - time.time()) < 5
    async with SimulatorClient(simulator_urls["payments"]) as shared:
        assert abs((await shared.clock())["now"] - time.time()) < 5
    assert (await payments_sim.clock())["now"] - time.time() > 3590


async def test_fault_context_manager_removes_its_rule(payments_sim: SimulatorClient) -> None:
    async with payments_sim.fault(route="/v1/charges", status=503) as rule:
        assert [listed["id"] for listed in await payments_sim.faults()] == [rule["id"]]
    assert await payments_sim.faults() == []
    await asyncio.sleep(0)

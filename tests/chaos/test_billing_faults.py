"""NFR-1, the fault matrix (docs/fault-matrix.md): payments made through the API while the payments simulator
injects one kind of fault, retried by their clients as a client would (same key), settled by the reconcile job;
then every billing invariant is checked (tests/support/billing_invariants.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.runtime.migrations import upgrade
from app.settings import Settings
from app.src.resilience.policy import ProviderPolicy
from tests.integration.billing_support import (
    PAYMENT,
    WEBHOOK_SECRET,
    Billing,
    billing,
    settle_everything,
    told_of,
    until_deliveries_end,
    webhook_relay,
)
from tests.support.billing_invariants import check_billing_invariants
from tests.support.private_postgres import private_postgres

pytestmark = pytest.mark.chaos

QUICK = ProviderPolicy(deadline=1.5, read_timeout=0.5, max_attempts=3, backoff_base=0.02, backoff_cap=0.1,
                       breaker_window=1000, breaker_minimum_calls=1000, budget_minimum=1000)  # fmt: skip


async def pay_all(env: Billing, keys: list[str], told: dict[str, str], rounds: int = 2) -> dict[str, int]:
    """Each key's payment, all at once; a key whose answer was not final is sent again (as a client retries),
    up to `rounds` times. What the client was told goes into `told`; the last status of each key is returned."""
    last: dict[str, int] = {}
    waiting = list(keys)
    for _ in range(rounds):
        responses = await asyncio.gather(*(env.pay(key) for key in waiting))
        for key, response in zip(waiting, responses, strict=True):
            last[key] = response.status_code
            assert response.status_code in (201, 202, 402, 409, 503), await response.get_data(as_text=True)
            if (payment := await told_of(response)) is not None:
                told[payment[0]] = payment[1]
        waiting = [key for key in waiting if last[key] in (202, 409, 503)]
        if not waiting:
            break
    return last


async def settled_and_checked(env: Billing, told: Mapping[str, str]) -> dict[str, int]:
    await settle_everything(env)
    return await check_billing_invariants(env.database_uri, env.sim.base_url, told)


@pytest.mark.requirement("NFR-1")
async def test_fifty_identical_requests_at_once_make_one_charge(settings: Settings, database_uri: str) -> None:
    # All fifty in the app at once: this is about the key, not the concurrency limit (which could shed some).
    async with billing(settings, database_uri, inbound_concurrency=64, inbound_busy_target=None) as env:
        slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 300}, "phase": "processing"}
        await env.sim.add_fault(route="/v1/charges", method="POST", action=slow)
        responses = await asyncio.gather(*(env.pay("the-one") for _ in range(50)))
        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {201, 409}, statuses
        assert statuses.count(201) >= 1
        made = {(await response.get_json())["id"] for response in responses if response.status_code == 201}
        assert len(made) == 1
        told = {made.pop(): "succeeded"}
        assert await settled_and_checked(env, told) == {"succeeded": 1}


@pytest.mark.requirement("NFR-1")
async def test_provider_latency_past_the_deadline(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri, payments_policy=QUICK) as env:
        slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 2000}, "phase": "after"}  # it acts, late
        async with env.sim.fault(route="/v1/charges", method="POST", action=slow):
            told: dict[str, str] = {}
            last = await pay_all(env, [f"slow-{n}" for n in range(6)], told, rounds=1)
        assert set(last.values()) == {202}  # no outcome within the deadline: processing, not an error
        assert set(told.values()) == {"processing"}
        assert await settled_and_checked(env, told) == {"succeeded": 6}


@pytest.mark.requirement("NFR-1")
async def test_bursts_of_503(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri, payments_policy=QUICK) as env:
        await env.sim.add_fault(route="/v1/charges", method="POST", status=503, probability=0.6)
        told: dict[str, str] = {}
        await pay_all(env, [f"burst-{n}" for n in range(12)], told)
        assert await settled_and_checked(env, told) == {"succeeded": 12}


@pytest.mark.requirement("NFR-1")
async def test_a_storm_of_429_with_retry_after(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri, payments_policy=QUICK) as env:
        await env.sim.add_fault(route="/v1/charges", method="POST", status=429, retry_after=0.2, probability=0.7)
        told: dict[str, str] = {}
        await pay_all(env, [f"storm-{n}" for n in range(10)], told)
        assert await settled_and_checked(env, told) == {"succeeded": 10}
        journal = await env.sim.journal(path="/v1/charges", method="POST")
        calls: dict[tuple[str, str], list[float]] = {}  # the attempts of one call: one key, one request id
        for entry in journal:
            call = (entry["headers"]["idempotency-key"], entry["headers"].get("x-request-id", ""))
            calls.setdefault(call, []).append(entry["time"])
        for times in calls.values():  # never sooner than the Retry-After the 429 asked for
            assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(times)), times


@pytest.mark.requirement("NFR-1")
async def test_connections_reset_before_the_provider_acts(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri, payments_policy=QUICK) as env:
        await env.sim.add_fault(route="/v1/charges", method="POST", action={"kind": "reset"}, probability=0.5)
        told: dict[str, str] = {}
        await pay_all(env, [f"reset-{n}" for n in range(12)], told)
        assert await settled_and_checked(env, told) == {"succeeded": 12}


@pytest.mark.requirement("NFR-1")
async def test_answers_lost_after_the_provider_committed(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri, payments_policy=QUICK) as env:
        lost = {"kind": "drop_after_commit"}
        await env.sim.add_fault(route="/v1/charges", method="POST", action=lost, probability=0.5)
        told: dict[str, str] = {}
        await pay_all(env, [f"dropped-{n}" for n in range(12)], told, rounds=1)
        assert await settled_and_checked(env, told) == {"succeeded": 12}


@pytest.mark.requirement("NFR-1")
async def test_declines_and_pending_outcomes_mixed_with_faults(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri, payments_policy=QUICK) as env:
        await env.sim.add_fault(route="/v1/charges", method="POST", action={"kind": "drop_after_commit"},
                                probability=0.3)  # fmt: skip
        told: dict[str, str] = {}
        customers = ["cus_42", "cus_declined", "cus_pending", "cus_pending_declined"]
        for number, customer in enumerate(customers * 3):
            response = await env.pay(f"mixed-{number}", {**PAYMENT, "customer": customer})
            if (payment := await told_of(response)) is not None:
                told[payment[0]] = payment[1]
        assert await settled_and_checked(env, told) == {"succeeded": 6, "failed": 6}


@pytest.mark.requirement("NFR-1")
async def test_webhooks_duplicated_reordered_and_dropped(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri) as env, webhook_relay(env) as relay:
        await env.sim.freeze_clock()
        await env.sim.register_webhook(relay, secrets=[WEBHOOK_SECRET], duplicates=2, reorder_window_seconds=0.3,
                                       drop_probability=0.4, retry_base_seconds=0.05)  # fmt: skip
        told: dict[str, str] = {}
        customers = ["cus_pending", "cus_pending_declined"] * 4
        for number, customer in enumerate(customers):
            response = await env.pay(f"hooked-{number}", {**PAYMENT, "customer": customer})
            if (payment := await told_of(response)) is not None:
                told[payment[0]] = payment[1]
        await env.sim.advance_clock(60)  # every pending charge settles; its events go out, two extra copies each
        log = await until_deliveries_end(env, copies=16 * 3)  # charge.pending and the outcome, per payment, x3
        assert {"delivered", "dropped"} <= {entry["outcome"] for entry in log}
        counts = await settled_and_checked(env, told)  # what the webhooks did not settle, the job does
        assert counts == {"succeeded": 4, "failed": 4}
        assert len(await env.rows("SELECT 1 FROM outbox WHERE kind = 'receipt'")) == 4
        delivered_events = {entry["event"] for entry in log if entry["outcome"] == "delivered"}
        recorded = {row["event_id"] for row in await env.rows("SELECT event_id FROM payment_events")}
        assert recorded == delivered_events  # each event seen once, however many copies came


@pytest.mark.requirement("NFR-1")
async def test_postgresql_restarted_in_the_middle_of_a_run(settings: Settings, tmp_path: Path) -> None:
    with private_postgres(tmp_path / "pg") as postgres:
        await upgrade(postgres.uri)
        overrides = {"db_uri": SecretStr(postgres.uri), "db_connect_timeout": 1.0, "idempotency_lease_seconds": 1.0}
        async with billing(settings, postgres.uri, payments_policy=QUICK, **overrides) as env:
            slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 400}, "phase": "after"}
            await env.sim.add_fault(route="/v1/charges", method="POST", action=slow)
            told: dict[str, str] = {}
            keys = [f"restart-{n}" for n in range(10)]
            # a group, not gather: a client that fails ends the others while the service is still up, rather than
            # leaving them to be cancelled, mid-request, when the loop closes after it
            async with asyncio.TaskGroup() as clients:
                paying = [clients.create_task(_until_final(env, key, told)) for key in keys]
                await asyncio.sleep(0.2)  # the first charges are at the provider: their phase (c) finds no database
                await asyncio.to_thread(postgres.stop)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(postgres.start)
            assert {payment.result() for payment in paying} <= {201}
            assert await settled_and_checked(env, told) == {"succeeded": 10}


async def _until_final(env: Billing, key: str, told: dict[str, str], attempts: int = 40) -> int:
    """A client that retries its payment with the same key until the answer is final (as the problem says)."""
    for _ in range(attempts):
        response = await env.pay(key)
        if (payment := await told_of(response)) is not None:
            told[payment[0]] = payment[1]
        status: int = response.status_code
        if status in (201, 402):
            return status
        assert response.status_code in (202, 409, 503), await response.get_data(as_text=True)
        await asyncio.sleep(0.25)
    raise AssertionError(f"{key}: no final answer")

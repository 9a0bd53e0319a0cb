"""NFR-1: payments whose outcome no request learnt are settled by the payments_reconcile job, against a real
payments simulator: the provider's answer replayed to our key, a pending charge read, a charge searched for."""

from __future__ import annotations

import pytest

from app.http.services import services_of
from app.settings import Settings
from app.src.resilience.policy import ProviderPolicy
from tests.integration.billing_support import PAYMENT, Billing, billing
from tests.support.billing_invariants import check_billing_invariants

pytestmark = pytest.mark.integration

ONE_ATTEMPT = ProviderPolicy(deadline=2.0, read_timeout=1.0, max_attempts=1)


async def lost_payment(env: Billing, key: str, action: dict[str, object], customer: str = "cus_42") -> str:
    """A payment whose charge call failed as `action` says, answered 202 and never retried by its client."""
    await env.sim.add_fault(route="/v1/charges", method="POST", action=action, times=1)
    response = await env.pay(key, {**PAYMENT, "customer": customer})
    assert response.status_code == 202, await response.get_data(as_text=True)
    payment_id: str = (await response.get_json())["id"]
    return payment_id


async def reconcile_now(env: Billing) -> dict[str, int]:
    await env.rows("UPDATE payments SET reconcile_at = now() WHERE reconcile_at IS NOT NULL")
    return await services_of(env.client.app).billing.reconcile()


async def status_of(env: Billing, payment_id: str) -> tuple[str, str | None]:
    [row] = await env.rows("SELECT status, failure_code FROM payments WHERE public_id = $1", payment_id)
    return row["status"], row["failure_code"]


@pytest.mark.requirement("NFR-1")
async def test_a_charge_made_but_never_answered_is_settled_by_replaying_our_key(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri, payments_policy=ONE_ATTEMPT) as env:
        payment_id = await lost_payment(env, "order-1", {"kind": "drop_after_commit"})
        assert len(await env.provider_charges()) == 1  # the provider charged; we do not know it yet
        assert await reconcile_now(env) == {"succeeded": 1}
        assert await status_of(env, payment_id) == ("succeeded", None)
        assert len(await env.provider_charges()) == 1  # the replay made no second charge
        assert len(await env.rows("SELECT 1 FROM outbox WHERE kind = 'receipt'")) == 1
        assert await reconcile_now(env) == {}  # settled: nothing is due any more


@pytest.mark.requirement("NFR-1")
async def test_a_charge_call_that_never_reached_the_provider_is_made_once_by_the_job(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri, payments_policy=ONE_ATTEMPT) as env:
        payment_id = await lost_payment(env, "order-2", {"kind": "reset"})
        assert await env.provider_charges() == []
        assert await reconcile_now(env) == {"succeeded": 1}
        [charge] = await env.provider_charges()
        assert charge["metadata"] == {"payment_id": payment_id}


@pytest.mark.requirement("NFR-1")
async def test_a_pending_charge_whose_webhook_was_lost_is_read_until_it_settles(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        await env.sim.freeze_clock()
        response = await env.pay("order-3", {**PAYMENT, "customer": "cus_pending_declined"})
        assert response.status_code == 202
        payment_id = (await response.get_json())["id"]
        assert await reconcile_now(env) == {"pending": 1}  # still pending at the provider
        await env.sim.advance_clock(60)
        assert await reconcile_now(env) == {"failed": 1}
        assert await status_of(env, payment_id) == ("failed", "card_declined")
        assert len(await env.provider_charges()) == 1


@pytest.mark.requirement("NFR-1")
async def test_past_the_providers_key_window_the_charge_is_searched_for_not_made_again(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri, payments_policy=ONE_ATTEMPT) as env:
        charged = await lost_payment(env, "order-4", {"kind": "drop_after_commit"})
        never = await lost_payment(env, "order-5", {"kind": "reset"})
        await env.rows("UPDATE payments SET created_at = now() - interval '23 hours 30 minutes'")
        assert await reconcile_now(env) == {"succeeded": 1, "failed": 1}
        assert await status_of(env, charged) == ("succeeded", None)
        assert await status_of(env, never) == ("failed", "never_charged")
        assert len(await env.provider_charges()) == 1  # nothing charged a day late


@pytest.mark.requirement("NFR-1")
async def test_with_the_provider_down_the_job_backs_off_and_changes_nothing_else(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri, payments_policy=ONE_ATTEMPT) as env:
        payment_id = await lost_payment(env, "order-6", {"kind": "reset"})
        await env.sim.add_fault(route="/v1/charges", method="POST", status=503)
        assert await reconcile_now(env) == {"unknown": 1}
        [row] = await env.rows("SELECT status, reconcile_attempts, reconcile_at > now() AS later FROM payments")
        assert (row["status"], row["reconcile_attempts"], row["later"]) == ("processing", 1, True)
        assert await env.provider_charges() == []
        await env.sim.clear_faults()
        assert await reconcile_now(env) == {"succeeded": 1}
        assert await status_of(env, payment_id) == ("succeeded", None)


@pytest.mark.requirement("NFR-1")
async def test_a_refund_whose_answer_was_lost_is_settled_by_replaying_its_key(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri, payments_policy=ONE_ATTEMPT) as env:
        payment = await (await env.pay("order-7")).get_json()
        await env.sim.add_fault(route="/v1/refunds", method="POST", action={"kind": "drop_after_commit"}, times=1)
        path = f"/api/billing/payments/{payment['id']}/refunds"
        lost = await env.client.post(path, json={"amount": 300}, headers=env.headers("refund-1"))
        assert lost.status_code == 202
        assert (await lost.get_json())["status"] == "processing"
        await env.rows("UPDATE refunds SET updated_at = now() - interval '1 hour'")
        assert await reconcile_now(env) == {"refund_succeeded": 1}
        [refund] = await env.rows("SELECT status FROM refunds")
        assert refund["status"] == "succeeded"
        [charge] = await env.provider_charges()
        assert charge["amount_refunded"] == 300  # refunded once, though asked twice
        told = {payment["id"]: "succeeded"}
        assert await check_billing_invariants(database_uri, env.sim.base_url, told) == {"succeeded": 1}

"""NFR-1 over HTTP against a real payments simulator: idempotency keys, atomic phases, and what the provider and
the database hold afterwards."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pydantic import SecretStr

from app.http.services import services_of
from app.settings import Settings
from app.src.resilience.policy import ProviderPolicy
from tests.integration.auth_support import User
from tests.integration.billing_support import PAYMENT, WEBHOOK_SECRET, Billing, billing, signature

pytestmark = pytest.mark.integration


@pytest.mark.requirement("NFR-1")
async def test_a_payment_is_charged_once_and_its_answer_is_replayed_byte_for_byte(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        first = await env.pay("order-1")
        assert first.status_code == 201, await first.get_data(as_text=True)
        payment = await first.get_json()
        assert (payment["status"], payment["amount"], payment["currency"]) == ("succeeded", 1250, "eur")
        assert first.headers["Location"] == f"/api/billing/payments/{payment['id']}"
        again = await env.pay("order-1")
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await again.get_data() == await first.get_data()
        assert again.headers["Location"] == first.headers["Location"]
        assert "Idempotent-Replayed" not in first.headers

        [charge] = await env.provider_charges()
        assert (charge["amount"], charge["metadata"]) == (1250, {"payment_id": payment["id"]})
        [row] = await env.rows("SELECT status, charge_id FROM payments")
        assert (row["status"], row["charge_id"]) == ("succeeded", charge["id"])
        [receipt] = await env.rows("SELECT payload FROM outbox WHERE kind = 'receipt'")
        assert payment["id"] in receipt["payload"]


@pytest.mark.requirement("NFR-1")
@pytest.mark.parametrize(
    ("key", "problem"),
    [(None, "idempotency-key-missing"), ("k" * 256, "idempotency-key-invalid"), ("", "idempotency-key-invalid")],
)
async def test_a_missing_or_malformed_key_is_400_and_changes_nothing(
    settings: Settings, database_uri: str, key: str | None, problem: str
) -> None:
    async with billing(settings, database_uri) as env:
        response = await env.pay(key)
        assert response.status_code == 400
        assert (await response.get_json())["type"].endswith(problem)
        assert await env.rows("SELECT 1 FROM payments UNION ALL SELECT 1 FROM idempotency_keys") == []
        assert await env.provider_charges() == []


@pytest.mark.requirement("NFR-1")
async def test_a_key_of_255_characters_in_quotes_is_one_key(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri) as env:
        key = "k" * 255
        assert (await env.pay(key)).status_code == 201
        replayed = await env.pay(f'"{key}"')  # the draft's structured-field string is the same key
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert len(await env.provider_charges()) == 1


@pytest.mark.requirement("NFR-1")
async def test_the_same_key_with_another_payload_is_422_and_charges_nothing_more(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        assert (await env.pay("order-2")).status_code == 201
        other = await env.pay("order-2", {**PAYMENT, "amount": 999})
        assert other.status_code == 422
        assert (await other.get_json())["type"].endswith("idempotency-key-reused")
        assert len(await env.provider_charges()) == 1
        assert len(await env.rows("SELECT 1 FROM payments")) == 1


@pytest.mark.requirement("NFR-1")
async def test_keys_are_scoped_by_user_and_client(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri) as env:
        assert (await env.pay("shared")).status_code == 201
        from_another_client = await env.pay("shared", client_id="mobile-2")
        assert from_another_client.status_code == 201
        assert "Idempotent-Replayed" not in from_another_client.headers

        eve = User(env.client, "eve@example.org")  # the same client id as ada's first request, another user
        assert (await eve.register()).status_code == 202
        eve_token = (await eve.tokens())["access_token"]
        from_another_user = await env.pay("shared", token=eve_token)
        assert from_another_user.status_code == 201
        assert "Idempotent-Replayed" not in from_another_user.headers
        ids = {(await response.get_json())["id"] for response in (from_another_client, from_another_user)}
        assert len(ids) == 2
        assert len(await env.provider_charges()) == 3


@pytest.mark.requirement("NFR-1")
async def test_the_same_key_while_the_first_request_runs_is_409_with_retry_after(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 1500}, "phase": "processing"}
        await env.sim.add_fault(route="/v1/charges", method="POST", action=slow)
        first = asyncio.create_task(env.pay("order-3"))
        async with asyncio.timeout(10):
            while not await env.sim.journal_count(path="/v1/charges", method="POST"):  # noqa: ASYNC110 - sim state
                await asyncio.sleep(0.02)
        second = await env.pay("order-3")
        assert second.status_code == 409
        assert (await second.get_json())["type"].endswith("idempotency-key-in-use")
        assert 1 <= int(second.headers["Retry-After"]) <= 60
        assert (await first).status_code == 201
        assert len(await env.provider_charges()) == 1


@pytest.mark.requirement("NFR-1")
async def test_a_declined_card_is_402_replayed_and_the_failed_payment_kept(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        declined = await env.pay("order-4", {**PAYMENT, "customer": "cus_declined"})
        assert declined.status_code == 402
        body = await declined.get_json()
        assert body["type"].endswith("payment-declined")
        again = await env.pay("order-4", {**PAYMENT, "customer": "cus_declined"})
        assert (again.status_code, again.headers["Idempotent-Replayed"]) == (402, "true")
        assert await again.get_data() == await declined.get_data()
        [row] = await env.rows("SELECT public_id, status, failure_code FROM payments")
        assert (row["status"], row["failure_code"]) == ("failed", "card_declined")
        assert row["public_id"] in body["detail"]
        assert len(await env.provider_charges()) == 1
        assert await env.rows("SELECT 1 FROM outbox WHERE kind = 'receipt'") == []


@pytest.mark.requirement("NFR-1")
async def test_an_outcome_lost_to_a_timeout_is_202_and_the_retry_resumes_without_charging_twice(
    settings: Settings, database_uri: str
) -> None:
    policy = ProviderPolicy(deadline=1.0, read_timeout=0.5, max_attempts=1)
    async with billing(settings, database_uri, payments_policy=policy) as env:
        slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 1200}, "phase": "after"}
        await env.sim.add_fault(route="/v1/charges", method="POST", action=slow, times=1)
        lost = await env.pay("order-5")
        assert lost.status_code == 202
        payment = await lost.get_json()
        assert payment["status"] == "processing"
        [key] = await env.rows("SELECT recovery_point, resource_id, response_status FROM idempotency_keys")
        assert (key["recovery_point"], key["resource_id"], key["response_status"]) == (
            "payment-made",
            payment["id"],
            None,
        )

        resumed = await env.pay("order-5")  # the provider replays its answer to our key: the same one charge
        assert resumed.status_code == 201
        assert (await resumed.get_json())["id"] == payment["id"]
        assert "Idempotent-Replayed" not in resumed.headers  # resumed, not replayed: this answer is the first final one
        [charge] = await env.provider_charges()
        assert charge["metadata"] == {"payment_id": payment["id"]}
        assert len(await env.rows("SELECT 1 FROM payments")) == 1


@pytest.mark.requirement("NFR-1")
async def test_a_payment_is_only_its_owners_and_lists_newest_first(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri) as env:
        made = [await (await env.pay(f"order-{n}", {**PAYMENT, "amount": 100 + n})).get_json() for n in range(3)]
        mine = await env.client.get(f"/api/billing/payments/{made[0]['id']}", headers=env.headers(None))
        assert (mine.status_code, (await mine.get_json())["amount"]) == (200, 100)
        page = await (await env.client.get("/api/billing/payments?limit=2", headers=env.headers(None))).get_json()
        assert [item["id"] for item in page["items"]] == [made[2]["id"], made[1]["id"]]
        rest = await env.client.get(f"/api/billing/payments?limit=2&cursor={page['next_cursor']}",
                                    headers=env.headers(None))  # fmt: skip
        assert [item["id"] for item in (await rest.get_json())["items"]] == [made[0]["id"]]
        assert (await rest.get_json())["next_cursor"] is None

        eve = User(env.client, "eve@example.org")
        assert (await eve.register()).status_code == 202
        eve_token = (await eve.tokens())["access_token"]
        theirs = await env.client.get(f"/api/billing/payments/{made[0]['id']}", headers=eve.headers(eve_token))
        assert theirs.status_code == 404
        listed = await env.client.get("/api/billing/payments", headers=eve.headers(eve_token))
        assert (await listed.get_json())["items"] == []
        refund = await env.client.post(f"/api/billing/payments/{made[0]['id']}/refunds", json={},
                                       headers={**eve.headers(eve_token), "Idempotency-Key": "steal"})  # fmt: skip
        assert refund.status_code == 404
        assert await env.rows("SELECT 1 FROM refunds") == []


@pytest.mark.requirement("NFR-1")
async def test_refunds_never_exceed_the_payment_even_when_made_at_once(settings: Settings, database_uri: str) -> None:
    async with billing(settings, database_uri) as env:
        payment = await (await env.pay("order-6")).get_json()
        path = f"/api/billing/payments/{payment['id']}/refunds"

        async def refund(key: str, amount: int) -> Any:
            return await env.client.post(path, json={"amount": amount}, headers=env.headers(key))

        first = await refund("refund-1", 250)
        assert first.status_code == 201, await first.get_data(as_text=True)
        assert (await first.get_json())["status"] == "succeeded"
        racing = await asyncio.gather(*(refund(f"refund-race-{n}", 300) for n in range(5)))  # 1,000 is left
        assert sorted(response.status_code for response in racing) == [201, 201, 201, 409, 409]
        too_much = await refund("refund-4", 101)
        assert too_much.status_code == 409
        assert (await too_much.get_json())["type"].endswith("refund-exceeds-payment")
        replayed = await refund("refund-1", 250)
        assert (replayed.status_code, replayed.headers["Idempotent-Replayed"]) == (201, "true")

        [row] = await env.rows("SELECT amount_refunded FROM payments")
        assert row["amount_refunded"] == 1150
        [charge] = await env.provider_charges()
        assert charge["amount_refunded"] == 1150


def charge_event(event_id: str, kind: str, charge_id: str, status: str, payment_id: str) -> bytes:
    """An event as Stripe (and the simulator) sends it."""
    charge = {"id": charge_id, "object": "charge", "status": status, "metadata": {"payment_id": payment_id}}
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": charge}}).encode()


async def deliver(env: Billing, body: bytes, signed: str | None) -> Any:
    headers = {"Content-Type": "application/json"} | ({} if signed is None else {"Stripe-Signature": signed})
    return await env.client.post("/api/billing/webhooks/payments", data=body, headers=headers)


async def pending_payment(env: Billing) -> tuple[str, str]:
    """A payment the provider holds pending (settled later by its clock): our id, and the provider's charge id."""
    response = await env.pay("order-pending", {**PAYMENT, "customer": "cus_pending"})
    assert response.status_code == 202
    payment_id = (await response.get_json())["id"]
    [charge] = await env.provider_charges()
    return payment_id, charge["id"]


@pytest.mark.requirement("NFR-1")
async def test_a_signed_event_settles_a_payment_once_and_a_late_one_never_moves_it_back(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        payment_id, charge_id = await pending_payment(env)
        succeeded = charge_event("evt_1", "charge.succeeded", charge_id, "succeeded", payment_id)
        for _ in range(2):  # the provider sends it twice
            assert (await deliver(env, succeeded, signature(succeeded))).status_code == 200
        late = charge_event("evt_0", "charge.pending", charge_id, "pending", payment_id)
        assert (await deliver(env, late, signature(late))).status_code == 200

        got = await env.client.get(f"/api/billing/payments/{payment_id}", headers=env.headers(None))
        assert (await got.get_json())["status"] == "succeeded"
        assert len(await env.rows("SELECT 1 FROM outbox WHERE kind = 'receipt'")) == 1
        events = await env.rows("SELECT event_id FROM payment_events ORDER BY event_id")
        assert [row["event_id"] for row in events] == ["evt_0", "evt_1"]


@pytest.mark.requirement("NFR-1")
@pytest.mark.parametrize(
    "signed",
    [
        None,
        "t=1,v1=00",
        "garbage",
        "wrong secret",
        "five minutes and a second ago",
        "five minutes and a second ahead",
    ],
)
async def test_an_event_without_a_valid_current_signature_is_400_and_changes_nothing(
    settings: Settings, database_uri: str, signed: str | None
) -> None:
    async with billing(settings, database_uri) as env:
        payment_id, charge_id = await pending_payment(env)
        body = charge_event("evt_2", "charge.succeeded", charge_id, "succeeded", payment_id)
        header = {
            "wrong secret": signature(body, "whsec_other"),
            "five minutes and a second ago": signature(body, at=time.time() - 301),
            "five minutes and a second ahead": signature(body, at=time.time() + 302),
        }.get(signed or "", signed)
        response = await deliver(env, body, header)
        assert response.status_code == 400
        assert (await response.get_json())["type"].endswith("invalid-signature")
        [row] = await env.rows("SELECT status FROM payments")
        assert row["status"] == "processing"
        assert await env.rows("SELECT 1 FROM payment_events") == []


@pytest.mark.requirement("NFR-1")
async def test_while_secrets_rotate_a_signature_under_either_is_accepted(settings: Settings, database_uri: str) -> None:
    secrets = SecretStr(f"whsec_next,{WEBHOOK_SECRET}")
    async with billing(settings, database_uri, payments_webhook_secrets=secrets) as env:
        payment_id, charge_id = await pending_payment(env)
        body = charge_event("evt_3", "charge.failed", charge_id, "failed", payment_id)
        old_and_unknown = f"{signature(body)},v1={'0' * 64}"
        assert (await deliver(env, body, old_and_unknown)).status_code == 200
        next_only = charge_event("evt_4", "charge.succeeded", charge_id, "succeeded", payment_id)
        assert (await deliver(env, next_only, signature(next_only, "whsec_next"))).status_code == 200
        [row] = await env.rows("SELECT status FROM payments")
        assert row["status"] == "failed"  # the first outcome stands: failed is final


@pytest.mark.requirement("NFR-1")
async def test_cleanup_removes_keys_past_their_retention_but_not_younger_ones(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        assert (await env.pay("old")).status_code == 201
        assert (await env.pay("young")).status_code == 201
        await env.rows("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'")
        removed = await services_of(env.client.app).cleanup.run()
        assert removed["idempotency_keys"] == 1
        assert [row["key"] for row in await env.rows("SELECT key FROM idempotency_keys")] == ["young"]
        again = await env.pay("old")  # forgotten: a new request (and a new payment)
        assert "Idempotent-Replayed" not in again.headers
        assert len(await env.provider_charges()) == 3

"""Webhooks as a receiver sees them: signed, and delayed, duplicated, reordered, dropped and retried on demand."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from simulators.client import SimulatorClient
from tests.support.webhook_receiver import Delivery, WebhookReceiver

CHARGE = {"amount": 900, "currency": "eur", "customer": "cus_9"}


def verify(delivery: Delivery, secret: str) -> bool:
    """What a receiver does: recompute HMAC-SHA256 of "t.body" and compare with any of the v1 signatures."""
    fields = [field.split("=", 1) for field in delivery.headers["Stripe-Signature"].split(",")]
    timestamp = next(value for name, value in fields if name == "t")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256).hexdigest()
    return any(name == "v1" and hmac.compare_digest(value, expected) for name, value in fields)


def event(delivery: Delivery) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(delivery.body)
    return parsed


async def create(http: aiohttp.ClientSession, sim: SimulatorClient, headers: dict[str, str], **extra: Any) -> str:
    async with http.post(sim.base_url + "/v1/charges", json={**CHARGE, **extra}, headers=headers) as response:
        body = await response.json()
        return str(body["id"] if "id" in body else body["error"]["charge"])


async def test_events_are_signed_and_verify_with_the_secret(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    await payments_sim.register_webhook(receiver.url, secrets=["whsec_test"])
    charge_id = await create(http, payments_sim, headers)
    [delivery] = await receiver.wait_for(1)
    assert verify(delivery, "whsec_test")
    assert not verify(delivery, "whsec_other")
    assert (event(delivery)["type"], event(delivery)["data"]["object"]["id"]) == ("charge.succeeded", charge_id)
    tampered = Delivery(delivery.headers, delivery.body.replace(b"900", b"901"))
    assert not verify(tampered, "whsec_test")


async def test_during_rotation_each_secret_has_its_own_signature(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    await payments_sim.register_webhook(receiver.url, secrets=["whsec_new", "whsec_old"])
    await create(http, payments_sim, headers)
    [delivery] = await receiver.wait_for(1)
    assert delivery.headers["Stripe-Signature"].count("v1=") == 2
    assert verify(delivery, "whsec_new")
    assert verify(delivery, "whsec_old")


async def test_duplicates_deliver_the_same_event_more_than_once(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    await payments_sim.register_webhook(receiver.url, duplicates=2)
    await create(http, payments_sim, headers)
    deliveries = await receiver.wait_for(3)
    assert len({event(delivery)["id"] for delivery in deliveries}) == 1


async def test_reordering_delivers_events_out_of_creation_order(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    await payments_sim.register_webhook(receiver.url, reorder_window_seconds=0.5)
    created = [await create(http, payments_sim, headers, metadata={"n": str(n)}) for n in range(8)]
    deliveries = await receiver.wait_for(8)
    arrived = [event(delivery)["data"]["object"]["id"] for delivery in deliveries]
    assert sorted(arrived) == sorted(created)
    assert arrived != created


async def test_dropped_events_never_arrive_and_are_logged(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    await payments_sim.register_webhook(receiver.url, drop_probability=1.0)
    await create(http, payments_sim, headers)
    deliveries = await payments_sim.webhook_deliveries()
    assert [entry["outcome"] for entry in deliveries] == ["dropped"]
    assert receiver.received == []


async def test_non_2xx_answers_are_retried_with_backoff_until_accepted(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    receiver.statuses.extend([500, 503])
    await payments_sim.register_webhook(receiver.url, retry_base_seconds=0.05)
    await create(http, payments_sim, headers)
    deliveries = await receiver.wait_for(3)
    assert len({event(delivery)["id"] for delivery in deliveries}) == 1
    log = await payments_sim.webhook_deliveries()
    assert [(entry["attempt"], entry["outcome"]) for entry in log] == [
        (1, "rejected"),
        (2, "rejected"),
        (3, "delivered"),
    ]


async def test_a_pending_charge_sends_its_outcome_when_it_settles(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str], receiver: WebhookReceiver
) -> None:
    await payments_sim.register_webhook(receiver.url)
    await payments_sim.freeze_clock()
    charge_id = await create(http, payments_sim, headers, customer="cus_pending_declined")
    [pending] = await receiver.wait_for(1)
    assert event(pending)["type"] == "charge.pending"
    await payments_sim.advance_clock(5)
    settled = (await receiver.wait_for(2))[1]
    assert (event(settled)["type"], event(settled)["data"]["object"]["id"]) == ("charge.failed", charge_id)

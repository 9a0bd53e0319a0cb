"""The payments simulator as Stripe's official Python SDK sees it: what the SDK sends (form bodies with bracket
notation, Idempotency-Key) is understood, and what the simulator answers and signs the SDK reads as Stripe's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import stripe

from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.support.simulator_fixtures import API_KEY
from tests.support.webhook_receiver import WebhookReceiver

CHARGE = {"amount": 1250, "currency": "eur", "customer": "cus_42", "description": "Two mugs"}


@pytest.fixture
def simulator_url() -> Iterator[str]:
    """A simulator of the test's own: the SDK cannot send X-Sim-Scope."""
    with BackgroundSimulator(build("payments", {"seed": 4})) as running:
        yield running.url


@pytest.fixture
async def client(simulator_url: str) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.AIOHTTPClient()
    yield stripe.StripeClient(API_KEY, base_addresses={"api": simulator_url}, http_client=http, max_network_retries=0)
    await http.close_async()  # type: ignore[no-untyped-call]


async def test_charges_made_by_the_sdk_are_retrieved_listed_and_found_by_metadata(
    client: stripe.StripeClient,
) -> None:
    params = {**CHARGE, "metadata": {"payment_id": "pay_7", "order": "o 1&2=3"}}
    made = await client.v1.charges.create_async(params=params)  # type: ignore[arg-type]
    other = await client.v1.charges.create_async(params={**CHARGE, "metadata": {"payment_id": "pay_8"}})  # type: ignore[arg-type]
    assert isinstance(made, stripe.Charge)
    assert (made.amount, made.currency, made.status, made.paid) == (1250, "eur", "succeeded", True)
    assert made.metadata.to_dict() == {"payment_id": "pay_7", "order": "o 1&2=3"}

    fetched = await client.v1.charges.retrieve_async(made.id)
    assert (fetched.id, fetched.amount, fetched.description) == (made.id, 1250, "Two mugs")

    listed = await client.v1.charges.list_async(params={"limit": 1})
    assert [charge.id for charge in listed.data] == [other.id]  # newest first
    assert listed.has_more
    rest = await client.v1.charges.list_async(params={"limit": 10, "starting_after": other.id})
    assert [charge.id for charge in rest.data] == [made.id]

    found = await client.v1.charges.search_async(params={"query": "metadata['payment_id']:'pay_7'"})
    assert [charge.id for charge in found.data] == [made.id]
    none = await client.v1.charges.search_async(params={"query": "metadata['payment_id']:'pay_9'"})
    assert none.data == []


async def test_a_key_replays_the_first_answer_and_refuses_other_parameters(client: stripe.StripeClient) -> None:
    first = await client.v1.charges.create_async(params=CHARGE, options={"idempotency_key": "k-1"})  # type: ignore[arg-type]
    again = await client.v1.charges.create_async(params=CHARGE, options={"idempotency_key": "k-1"})  # type: ignore[arg-type]
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.charges.create_async(params={**CHARGE, "amount": 1}, options={"idempotency_key": "k-1"})  # type: ignore[arg-type]
    assert len((await client.v1.charges.list_async()).data) == 1


async def test_a_decline_is_a_card_error_naming_the_failed_charge(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as declined:
        await client.v1.charges.create_async(params={**CHARGE, "customer": "cus_declined"})  # type: ignore[arg-type]
    assert declined.value.code == "card_declined"
    assert declined.value.http_status == 402
    assert declined.value.error is not None
    failed = await client.v1.charges.retrieve_async(str(declined.value.error.charge))
    assert (failed.status, failed.paid, failed.failure_code) == ("failed", False, "card_declined")


async def test_refunds_never_go_beyond_the_charge(client: stripe.StripeClient) -> None:
    charge = await client.v1.charges.create_async(params=CHARGE)  # type: ignore[arg-type]
    refund = await client.v1.refunds.create_async(params={"charge": charge.id, "amount": 250})
    assert (refund.amount, refund.charge, refund.status) == (250, charge.id, "succeeded")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.refunds.create_async(params={"charge": charge.id, "amount": 1001})
    assert refused.value.param == "amount"
    assert (await client.v1.charges.retrieve_async(charge.id)).amount_refunded == 250


async def test_webhooks_verify_with_the_sdk_and_a_wrong_secret_does_not(
    client: stripe.StripeClient, simulator_url: str, receiver: WebhookReceiver
) -> None:
    async with SimulatorClient(simulator_url) as sim:
        await sim.register_webhook(receiver.url, secrets=["whsec_new", "whsec_old"])
    charge = await client.v1.charges.create_async(params=CHARGE)  # type: ignore[arg-type]
    [delivery] = await receiver.wait_for(1)
    signature = delivery.headers["Stripe-Signature"]
    for secret in ("whsec_new", "whsec_old"):  # either secret verifies while they rotate
        event = stripe.Webhook.construct_event(delivery.body, signature, secret)
        assert (event.type, event.data.object["id"], event.data.object["status"]) == (
            "charge.succeeded", charge.id, "succeeded",
        )  # fmt: skip
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, signature, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body.replace(b"1250", b"1251"), signature, "whsec_new")

"""Charges and refunds at the payments provider, in Stripe's wire format (form bodies with bracket notation,
Idempotency-Key, Stripe's error and list envelopes): pointed at Stripe's test mode with its key, this is what
Stripe itself takes. Every call goes through the resilient provider client; what comes back is an outcome the
billing service understands, or a ProviderError that says the outcome is not known."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import orjson

from app.src.api.common.providers import ProviderRejectedError
from app.src.resilience.client import ProviderClient

ProviderStatus = Literal["succeeded", "failed", "pending"]
DECLINED = 402


@dataclass(frozen=True, slots=True)
class ChargeOrder:
    payment_id: str  # ours: in the charge's metadata, so the charge can be found without its id
    amount: int
    currency: str
    customer: str
    description: str | None


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    status: ProviderStatus
    charge_id: str | None
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    succeeded: bool
    refund_id: str | None
    reason: str | None = None  # why the provider refused it


def stripe_form(parameters: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested maps in brackets (`metadata[payment_id]=...`); None is left out."""
    fields: list[tuple[str, str]] = []
    for name, value in parameters.items():
        key = f"{prefix}[{name}]" if prefix else name
        if isinstance(value, Mapping):
            fields.extend(stripe_form(value, key))
        elif value is not None:
            fields.append((key, str(value)))
    return fields


def provider_key(kind: str, our_id: str) -> str:
    """The Idempotency-Key of a provider call, derived from the id of what it is for: every attempt and every
    retry of it, by the request, its retry or the reconcile job, is the same call to the provider."""
    return f"proving-ground-{kind}-{our_id}"


class StripeCharges:
    def __init__(self, client: ProviderClient) -> None:
        self._client = client

    async def create_charge(self, order: ChargeOrder) -> ChargeOutcome:
        """A declined card is an outcome (failed); any other failure a ProviderError."""
        parameters = {
            "amount": order.amount, "currency": order.currency, "customer": order.customer,
            "description": order.description, "metadata": {"payment_id": order.payment_id},
        }  # fmt: skip
        try:
            response = await self._client.request(
                "POST",
                "/v1/charges",
                form=stripe_form(parameters),
                idempotency_key=provider_key("charge", order.payment_id),
            )
        except ProviderRejectedError as rejected:
            if rejected.status == DECLINED and (declined := _card_error(rejected.body)) is not None:
                return declined
            raise
        return _charge_outcome(response.json())

    async def charge(self, charge_id: str) -> ChargeOutcome:
        response = await self._client.request("GET", f"/v1/charges/{charge_id}")
        return _charge_outcome(response.json())

    async def find_charge(self, payment_id: str) -> ChargeOutcome | None:
        """The charge made for our payment, found by its metadata (for when the provider no longer keeps the
        create call's idempotency key); None when there is none."""
        query = f"metadata['payment_id']:'{payment_id}'"
        response = await self._client.request("GET", "/v1/charges/search?" + urlencode({"query": query, "limit": 2}))
        found = response.json()["data"]
        return _charge_outcome(found[0]) if found else None

    async def refund(self, refund_id: str, charge_id: str, amount: int) -> RefundOutcome:
        """A refund the provider refuses (more than is left, a charge not succeeded) is an outcome too."""
        form = stripe_form({"charge": charge_id, "amount": amount, "metadata": {"refund_id": refund_id}})
        try:
            response = await self._client.request(
                "POST", "/v1/refunds", form=form, idempotency_key=provider_key("refund", refund_id)
            )
        except ProviderRejectedError as rejected:
            if rejected.status == 400:
                return RefundOutcome(False, None, _error_message(rejected.body))
            raise
        body = response.json()
        return RefundOutcome(body.get("status") == "succeeded", body["id"])


def _charge_outcome(charge: dict[str, Any]) -> ChargeOutcome:
    status = charge["status"]
    if status not in ("succeeded", "failed", "pending"):
        raise ValueError(f"unknown charge status {status!r}")
    return ChargeOutcome(status, charge["id"], charge.get("failure_code"))


def _card_error(body: bytes) -> ChargeOutcome | None:
    error = _error(body)
    if error.get("type") != "card_error":
        return None
    return ChargeOutcome("failed", error.get("charge"), error.get("code") or "card_declined")


def _error(body: bytes) -> dict[str, Any]:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_message(body: bytes) -> str:
    return str(_error(body).get("message") or "refused by the provider")[:200]

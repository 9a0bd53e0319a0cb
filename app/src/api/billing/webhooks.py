"""The payments provider's events, verified as Stripe signs them: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`,
HMAC-SHA256 of "t.body" under a shared secret. Every `v1` is tried against every secret we hold (either side may be
rotating), compared in constant time; `t` must be within TOLERANCE seconds of our clock, in both directions (a
replayed old event, or one signed by a clock far ahead)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE = 300
MAX_SIGNATURES = 16


class RejectedEventError(ValueError):
    """An event refused (400): it changes nothing."""

    code = "event-rejected"


class InvalidSignatureError(RejectedEventError):
    """The event is not the provider's, or not from now."""

    code = "invalid-signature"


class UnreadableEventError(RejectedEventError):
    """Signed by the provider, but not an event we can read."""

    code = "unreadable-event"


@dataclass(frozen=True, slots=True)
class ChargeEvent:
    id: str
    type: str
    charge_id: str
    status: str
    payment_id: str | None  # ours, from the charge's metadata
    failure_code: str | None


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: float) -> None:
    """InvalidSignatureError unless one of the header's v1 signatures is the body's under one of `secrets`, made
    within TOLERANCE seconds of `now`."""
    if not secrets:
        raise InvalidSignatureError("No webhook secret is configured (PAYMENTS_WEBHOOK_SECRETS).")
    if header is None:
        raise InvalidSignatureError(f"The {SIGNATURE_HEADER} header is missing.")
    timestamp, signatures = None, []
    for item in header.split(",")[: MAX_SIGNATURES + 1]:
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value.encode())
    if timestamp is None or not signatures:
        raise InvalidSignatureError(f"The {SIGNATURE_HEADER} header needs t=<unix time> and v1=<signature>.")
    if abs(now - timestamp) > TOLERANCE:
        raise InvalidSignatureError(f"The signature's time is more than {TOLERANCE} s from ours.")
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode() for secret in secrets]
    matched = False
    for signature in signatures:  # every comparison made, in constant time each: no early exit to time
        for digest in expected:
            matched |= hmac.compare_digest(signature, digest)
    if not matched:
        raise InvalidSignatureError("No signature matches the body under our secrets.")


def charge_event(body: bytes) -> ChargeEvent | None:
    """The charge event in a verified body; None for an event of another kind (acknowledged, not acted on)."""
    try:
        event: Any = orjson.loads(body)
        kind = event["type"]
        if not isinstance(kind, str) or not kind.startswith("charge."):
            return None
        charge = event["data"]["object"]
        metadata = charge.get("metadata") or {}
        return ChargeEvent(
            id=str(event["id"]), type=kind, charge_id=str(charge["id"]), status=str(charge["status"]),
            payment_id=metadata.get("payment_id"), failure_code=charge.get("failure_code"),
        )  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableEventError(f"The event is signed but not one we can read ({type(error).__name__}).") from None

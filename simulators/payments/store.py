"""Charges and refunds of one scope, and how a charge turns out."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field

from simulators.payments.models import Charge, ChargeRequest, ChargeStatus, Outcomes, Refund

FORCED_OUTCOMES: dict[str, tuple[ChargeStatus, ChargeStatus]] = {
    # customer: (status at creation, status once settled)
    "cus_declined": ("failed", "failed"),
    "cus_pending": ("pending", "succeeded"),
    "cus_pending_declined": ("pending", "failed"),
}


class RefundRejectedError(Exception):
    """The refund cannot be made; the message says why, as the provider's answer will."""


@dataclass
class Ledger:
    rng: random.Random
    charges: dict[str, Charge] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)

    def create_charge(
        self, request: ChargeRequest, now: float, outcomes: Outcomes, idempotency_key: str | None
    ) -> Charge:
        initial, settled = self._outcome(request.customer, outcomes)
        charge = Charge(
            id=f"ch_{secrets.token_hex(12)}",
            amount=request.amount,
            currency=request.currency,
            customer=request.customer,
            description=request.description,
            metadata=request.metadata,
            status=initial,
            failure_code="card_declined" if initial == "failed" else None,
            created=int(now),
            idempotency_key=idempotency_key,
            settles_at=now + outcomes.settle_after_seconds if initial == "pending" else None,
            settles_to=settled if initial == "pending" else None,
        )
        self.charges[charge.id] = charge
        if idempotency_key is not None:
            self.by_idempotency_key[idempotency_key] = charge.id
        return charge

    def _outcome(self, customer: str, outcomes: Outcomes) -> tuple[ChargeStatus, ChargeStatus]:
        if customer in FORCED_OUTCOMES:
            return FORCED_OUTCOMES[customer]
        if self.rng.random() < outcomes.pending_probability:
            return "pending", "failed" if self.rng.random() < outcomes.pending_failure_probability else "succeeded"
        if self.rng.random() < outcomes.failure_probability:
            return "failed", "failed"
        return "succeeded", "succeeded"

    def settle_due(self, now: float) -> list[Charge]:
        settled = []
        for charge in self.charges.values():
            if charge.status == "pending" and charge.settles_at is not None and charge.settles_at <= now:
                charge.status = charge.settles_to or "succeeded"
                charge.failure_code = "card_declined" if charge.status == "failed" else None
                charge.settles_at = charge.settles_to = None
                settled.append(charge)
        return settled

    def refund(self, charge_id: str, amount: int | None, reason: str | None, now: float) -> Refund:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise RefundRejectedError(f"No such charge: {charge_id}")
        if charge.status != "succeeded":
            raise RefundRejectedError(f"Charge {charge_id} is {charge.status}; only succeeded charges can be refunded.")
        left = charge.amount - charge.amount_refunded
        amount = left if amount is None else amount
        if amount > left or left == 0:
            raise RefundRejectedError(f"Refund amount ({amount}) is greater than the unrefunded amount ({left}).")
        refund = Refund(
            id=f"re_{secrets.token_hex(12)}", charge=charge_id, amount=amount, reason=reason, created=int(now)
        )
        charge.amount_refunded += amount
        charge.refunded = charge.amount_refunded == charge.amount
        self.refunds[refund.id] = refund
        return refund

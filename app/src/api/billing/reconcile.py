"""The `payments_reconcile` job: payments whose outcome no request settled (the provider did not answer in time,
the request died between phases, the client never retried, a pending charge whose webhook was lost) are settled
the way Stripe's guidance says: while the provider keeps our idempotency key, the create call is replayed with
the same key and parameters (it answers with the original result, or makes the one charge now); past that, the
charge is looked up by the payment id we put in its metadata, and a payment with no charge by then never was
charged. A charge whose id we know is simply read. Refunds left processing are replayed with their own key."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING

from app.src.api.common.providers import ProviderError
from app.src.api.payments_provider.charges import ChargeOrder, ChargeOutcome, StripeCharges
from app.src.database import payments
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.src.api.billing.service import BillingService

BATCH = 100
NEVER_CHARGED = "never_charged"
_log = module_logger("billing")


async def reconcile(billing: BillingService, provider: StripeCharges, now: dt.datetime | None = None) -> dict[str, int]:
    """One pass over the payments due; how many ended succeeded, failed, still pending or still unknown."""
    now = now or dt.datetime.now(dt.UTC)
    due = await billing.database.read(lambda connection: payments.due_for_reconciling(connection, BATCH))
    counts: Counter[str] = Counter()
    for row, attempts in due:
        try:
            outcome = await _outcome(row, provider, now, billing.policy.provider_keeps_keys_seconds)
        except ProviderError as error:
            _log.warning("reconcile: outcome still unknown", payment_id=row.public_id, error=type(error).__name__)
            async with billing.database.transaction() as connection:
                await payments.still_processing(connection, row.public_id, None, billing.backoff(attempts))
            counts["unknown"] += 1
            continue
        settled = await billing.record(row.public_id, outcome, attempts=attempts)
        counts[settled.status if settled is not None and settled.status != "processing" else "pending"] += 1
    await _refunds(billing, provider, counts)
    if counts:
        _log.info("payments reconciled", **counts)
    return dict(counts)


async def _refunds(billing: BillingService, provider: StripeCharges, counts: Counter[str]) -> None:
    """Refunds whose outcome no request learnt: the refund call replayed with its key (the provider answers as
    it did, or refunds once now). Past the provider's key window a refund is left processing and logged: only
    an operator can tell it then."""
    quiet = billing.policy.reconcile_after_seconds
    due = await billing.database.read(lambda connection: payments.refunds_due(connection, quiet, BATCH))
    for refund, charge_id, age in due:
        if age >= billing.policy.provider_keeps_keys_seconds:
            _log.error("refund outcome unknown past the provider's key window", refund_id=refund.public_id)
            counts["refund_stuck"] += 1
            async with billing.database.transaction() as connection:
                await payments.touch_refund(connection, refund.public_id)
            continue
        try:
            outcome = await provider.refund(refund.public_id, charge_id, refund.amount)
        except ProviderError as error:
            _log.warning("reconcile: refund outcome still unknown", refund_id=refund.public_id,
                         error=type(error).__name__)  # fmt: skip
            async with billing.database.transaction() as connection:
                await payments.touch_refund(connection, refund.public_id)
            counts["refund_unknown"] += 1
            continue
        async with billing.database.transaction() as connection:
            await payments.settle_refund(connection, refund.public_id, outcome.succeeded, outcome.refund_id,
                                         outcome.reason)  # fmt: skip
        counts["refund_succeeded" if outcome.succeeded else "refund_failed"] += 1


async def _outcome(
    row: payments.PaymentRow, provider: StripeCharges, now: dt.datetime, keys_kept_seconds: float
) -> ChargeOutcome:
    if row.charge_id is not None:
        return await provider.charge(row.charge_id)
    if (now - row.created_at).total_seconds() < keys_kept_seconds:
        order = ChargeOrder(row.public_id, row.amount, row.currency, row.customer, row.description)
        return await provider.create_charge(order)
    found = await provider.find_charge(row.public_id)
    return found if found is not None else ChargeOutcome("failed", None, NEVER_CHARGED)

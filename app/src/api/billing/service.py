"""Payments and refunds in atomic phases (brandur's "atomic phases and recovery points"):

(a) one transaction records the payment, processing, and ties it to the request's idempotency key;
(b) the provider is called with a key derived from the payment's id, so every attempt of that call (this
    request's, its retry's, the reconcile job's) is one charge at most;
(c) one transaction records the outcome, through `payments.settle`, which only ever moves a processing payment,
    and puts the receipt in the outbox.

A request that dies after (a) leaves a processing payment: the client's retry with the same key resumes at (b), and
if no retry comes, the reconcile job (app/src/api/billing/reconcile.py) settles it. An outcome the provider does not
give in time (a timeout, an outage, a lost answer) is not a failure: the payment stays processing, the answer is 202,
and the retry or the job finds out."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from app.src.api.billing.messages import receipt
from app.src.api.billing.models import Payment, PaymentPage, PaymentRequest, Refund, RefundRequest
from app.src.api.billing.reconcile import reconcile
from app.src.api.billing.webhooks import charge_event, verify
from app.src.api.common.errors import ConflictError, DomainError, InvalidParametersError, NotFoundError
from app.src.api.common.providers import ProviderError
from app.src.api.idempotency.keys import Claim
from app.src.api.messaging.outbox import Outbox
from app.src.api.payments_provider.charges import ChargeOrder, ChargeOutcome, StripeCharges
from app.src.database import payments
from app.src.database.outbox import OutboxStatements
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

PAYMENT_MADE = "payment-made"  # the recovery point after phase (a)
REFUND_MADE = "refund-made"
_log = module_logger("billing")


class PaymentDeclinedError(DomainError):
    """The provider declined the charge: the payment exists, failed (its id is in the detail)."""

    code = "payment-declined"

    def __init__(self, payment: Payment) -> None:
        super().__init__(f"The payment {payment.id} was declined ({payment.failure_code}).")
        self.payment = payment


@dataclass(frozen=True, slots=True)
class BillingPolicy:
    reconcile_after_seconds: float = 60.0  # after (a), when the job looks at a payment no request settled
    reconcile_backoff_seconds: float = 30.0  # doubled per attempt while the outcome stays unknown
    reconcile_backoff_cap_seconds: float = 3600.0
    provider_keeps_keys_seconds: float = 23 * 3600.0  # Stripe keeps an idempotency key 24 h: replay until then
    webhook_secrets: tuple[str, ...] = ()  # every one is tried: several while they rotate


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def as_payment(row: payments.PaymentRow) -> Payment:
    return Payment(
        id=row.public_id, amount=row.amount, currency=row.currency, customer=row.customer,
        description=row.description, status=row.status, failure_code=row.failure_code,  # type: ignore[arg-type]
        amount_refunded=row.amount_refunded, created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


def as_refund(row: payments.RefundRow) -> Refund:
    return Refund(
        id=row.public_id, payment_id=row.payment_id, amount=row.amount,
        status=row.status, created_at=row.created_at,  # type: ignore[arg-type]
    )  # fmt: skip


class BillingService:
    def __init__(
        self, database: Database, charges: StripeCharges | None, outbox: Outbox, policy: BillingPolicy
    ) -> None:
        self.database = database
        self._charges = charges
        self._outbox = outbox
        self.policy = policy

    async def reconcile(self) -> dict[str, int]:
        """The payments_reconcile job's pass (app/src/api/billing/reconcile.py)."""
        return await reconcile(self, self._provider())

    def _provider(self) -> StripeCharges:
        if self._charges is None:
            raise ConflictError("Payments are not configured here (PAYMENTS_URL is not set).", code="no-provider")
        return self._charges

    async def create_payment(self, user_id: int, request: PaymentRequest, claim: Claim) -> Payment:
        """The payment, succeeded or processing; PaymentDeclinedError when the provider declined it."""
        provider = self._provider()
        row = None
        if (made := claim.resource_id) is not None:  # a retry: phase (a) was done
            row = await self.database.read(lambda connection: payments.payment(connection, made))
        if row is None:
            async with self.database.transaction() as connection:  # phase (a)
                await self._outbox.admit(OutboxStatements(connection))  # a receipt will follow: admitted now
                row = await payments.insert_payment(
                    connection, new_id("pay"), user_id, request.amount, request.currency, request.customer,
                    request.description, self.policy.reconcile_after_seconds,
                )  # fmt: skip
                await claim.remember(connection, row.public_id, PAYMENT_MADE)
        if row.status == "processing":
            row = await self.charge(row, provider)
        payment = as_payment(row)
        if payment.status == "failed":
            raise PaymentDeclinedError(payment)
        return payment

    async def charge(self, row: payments.PaymentRow, provider: StripeCharges) -> payments.PaymentRow:
        """Phases (b) and (c): ask the provider (again: the call's key makes it one charge), record what it said."""
        order = ChargeOrder(row.public_id, row.amount, row.currency, row.customer, row.description)
        try:
            outcome = await provider.create_charge(order)
        except ProviderError as error:
            _log.warning("charge outcome unknown", payment_id=row.public_id, error=type(error).__name__)
            return row
        return await self.record(row.public_id, outcome) or row

    async def record(self, public_id: str, outcome: ChargeOutcome, *, attempts: int = 0) -> payments.PaymentRow | None:
        """Phase (c), in a transaction of its own; the payment as it now is."""
        async with self.database.transaction() as connection:
            return await self._record_in(connection, public_id, outcome, attempts)

    async def _record_in(
        self, connection: asyncpg.Connection, public_id: str, outcome: ChargeOutcome, attempts: int
    ) -> payments.PaymentRow | None:
        """A succeeded or failed outcome settles the payment (a success puts its receipt in the outbox, in the
        same transaction); a pending one is looked at again later."""
        if outcome.status == "pending":
            await payments.still_processing(connection, public_id, outcome.charge_id, self.backoff(attempts))
            return await payments.payment(connection, public_id)
        settled = await payments.settle(connection, public_id, outcome.status, outcome.charge_id, outcome.failure_code)
        if settled is None:  # settled already, by another path: as it is
            return await payments.payment(connection, public_id)
        if settled.status == "succeeded":
            email = await payments.email_of(connection, settled.user_id)
            await self._outbox.add(OutboxStatements(connection), receipt(settled, email))
        _log.info("payment settled", payment_id=public_id, status=settled.status)
        return settled

    async def receive_event(self, body: bytes, signature: str | None) -> None:
        """A provider event, verified (RejectedEventError otherwise), applied once: the event's id is recorded in
        the transaction of its effect, so a duplicate finds it and changes nothing."""
        verify(body, signature, self.policy.webhook_secrets, time.time())
        event = charge_event(body)
        if event is None or event.status not in ("succeeded", "failed", "pending"):
            return
        outcome = ChargeOutcome(event.status, event.charge_id, event.failure_code)  # type: ignore[arg-type]
        async with self.database.transaction() as connection:
            if not await payments.event_is_new(connection, event.id, event.type, event.charge_id):
                return
            public_id = event.payment_id or await payments.payment_of_charge(connection, event.charge_id)
            if public_id is not None and await payments.payment(connection, public_id) is not None:
                await self._record_in(connection, public_id, outcome, 0)

    def backoff(self, attempts: int) -> float:
        return min(self.policy.reconcile_backoff_cap_seconds, self.policy.reconcile_backoff_seconds * 2.0**attempts)

    async def payment(self, user_id: int, public_id: str) -> Payment:
        row = await self.database.read(lambda connection: payments.payment(connection, public_id, user_id))
        if row is None:
            raise NotFoundError("No payment of yours has this id.", code="no-such-payment")
        return as_payment(row)

    async def payments(self, user_id: int, limit: int, cursor: str | None) -> PaymentPage:
        rows = await self.database.read(lambda connection: payments.payments_of(connection, user_id, limit + 1, cursor))
        if cursor is not None and not rows and not await self._owns(user_id, cursor):
            raise InvalidParametersError("The cursor is not one this listing gave.", [])
        page = rows[:limit]
        return PaymentPage(
            items=[as_payment(row) for row in page], next_cursor=page[-1].public_id if len(rows) > limit else None
        )

    async def _owns(self, user_id: int, public_id: str) -> bool:
        return await self.database.read(lambda c: payments.payment(c, public_id, user_id)) is not None

    async def refund(self, user_id: int, payment_id: str, request: RefundRequest, claim: Claim) -> Refund:
        """A refund of the user's payment, never beyond what is left of it (refunds made at the same time
        included); processing while the provider's answer is not known."""
        provider = self._provider()
        found = None
        if (made := claim.resource_id) is not None:
            found = await self.database.read(lambda connection: payments.refund(connection, made))
        if found is None:
            async with self.database.transaction() as connection:
                reserved = await payments.reserve_refund(connection, new_id("re"), payment_id, user_id, request.amount)
                if isinstance(reserved, str):
                    raise _refused(reserved)
                charge_id = (await payments.payment(connection, payment_id)).charge_id  # type: ignore[union-attr]
                await claim.remember(connection, reserved.public_id, REFUND_MADE)
            found = reserved, charge_id
        row, charge_id = found
        if row.status != "processing" or charge_id is None:
            return as_refund(row)
        try:
            outcome = await provider.refund(row.public_id, charge_id, row.amount)
        except ProviderError as error:
            _log.warning("refund outcome unknown", refund_id=row.public_id, error=type(error).__name__)
            return as_refund(row)
        async with self.database.transaction() as connection:
            await payments.settle_refund(
                connection, row.public_id, outcome.succeeded, outcome.refund_id, outcome.reason
            )
            settled = await payments.refund(connection, row.public_id)
        assert settled is not None  # noqa: S101 - refunds are never deleted
        if settled[0].status == "failed":
            raise ConflictError(f"The provider refused the refund: {outcome.reason}", code="refund-refused")
        return as_refund(settled[0])


def _refused(reason: str) -> DomainError:
    if reason == "missing":
        return NotFoundError("No payment of yours has this id.", code="no-such-payment")
    if reason == "not-succeeded":
        return ConflictError("Only a succeeded payment can be refunded.", code="payment-not-succeeded")
    return ConflictError("The refund is more than what is left of the payment.", code="refund-exceeds-payment")

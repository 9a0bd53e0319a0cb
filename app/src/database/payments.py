"""The payments, refunds and payment_events tables (migration 0007) and their SQL, on plain asyncpg.

Statuses only move forward, and only here: `settle` changes a payment that is still processing, so a late or
repeated outcome (a webhook after the reconcile job, a `pending` after `succeeded`) changes nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

_PAYMENT = (
    "public_id, user_id, amount, currency, customer, description, status, charge_id, failure_code, "
    "amount_refunded, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    public_id: str
    user_id: int
    amount: int
    currency: str
    customer: str
    description: str | None
    status: str
    charge_id: str | None
    failure_code: str | None
    amount_refunded: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RefundRow:
    public_id: str
    payment_id: str
    amount: int
    status: str
    refund_id: str | None
    created_at: dt.datetime


async def insert_payment(
    connection: asyncpg.Connection, public_id: str, user_id: int, amount: int, currency: str, customer: str,
    description: str | None, reconcile_after: float,
) -> PaymentRow:  # fmt: skip
    """A new payment, processing; the reconcile job looks at it after `reconcile_after` seconds unless settled."""
    row = await connection.fetchrow(
        "INSERT INTO payments (public_id, user_id, amount, currency, customer, description, reconcile_at) "  # nosec B608 # noqa: S608 - _PAYMENT is a constant column list
        f"VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) RETURNING {_PAYMENT}",
        public_id, user_id, amount, currency, customer, description, reconcile_after,
    )  # fmt: skip
    return PaymentRow(*row)


async def payment(connection: asyncpg.Connection, public_id: str, user_id: int | None = None) -> PaymentRow | None:
    """The payment; with `user_id`, only if it is that user's."""
    row = await connection.fetchrow(
        f"SELECT {_PAYMENT} FROM payments WHERE public_id = $1 AND ($2::bigint IS NULL OR user_id = $2)",  # nosec B608 # noqa: S608 - _PAYMENT is a constant column list
        public_id, user_id,
    )  # fmt: skip
    return None if row is None else PaymentRow(*row)


async def payments_of(connection: asyncpg.Connection, user_id: int, limit: int, before: str | None) -> list[PaymentRow]:
    """The user's payments, newest first; after the one `before` names, when given."""
    rows = await connection.fetch(
        f"SELECT {_PAYMENT} FROM payments WHERE user_id = $1 "  # nosec B608 # noqa: S608 - _PAYMENT is a constant column list
        "AND ($3::text IS NULL OR id < (SELECT id FROM payments WHERE public_id = $3 AND user_id = $1)) "
        "ORDER BY id DESC LIMIT $2",
        user_id, limit, before,
    )  # fmt: skip
    return [PaymentRow(*row) for row in rows]


async def settle(
    connection: asyncpg.Connection, public_id: str, status: str, charge_id: str | None, failure_code: str | None
) -> PaymentRow | None:
    """Processing becomes `status` (succeeded or failed); None when it was settled already."""
    row = await connection.fetchrow(
        "UPDATE payments SET status = $2, charge_id = coalesce(charge_id, $3), failure_code = $4, "  # nosec B608 # noqa: S608 - _PAYMENT is a constant column list
        f"reconcile_at = NULL, updated_at = now() WHERE public_id = $1 AND status = 'processing' RETURNING {_PAYMENT}",
        public_id, status, charge_id, failure_code,
    )  # fmt: skip
    return None if row is None else PaymentRow(*row)


async def still_processing(
    connection: asyncpg.Connection, public_id: str, charge_id: str | None, reconcile_after: float
) -> None:
    """The outcome is not known yet: the charge's id if we learnt it, and when the reconcile job looks again."""
    await connection.execute(
        "UPDATE payments SET charge_id = coalesce(charge_id, $2), updated_at = now(), "
        "reconcile_at = now() + make_interval(secs => $3), reconcile_attempts = reconcile_attempts + 1 "
        "WHERE public_id = $1 AND status = 'processing'",
        public_id, charge_id, reconcile_after,
    )  # fmt: skip


async def due_for_reconciling(connection: asyncpg.Connection, limit: int) -> list[tuple[PaymentRow, int]]:
    """Payments whose outcome the reconcile job should look for now, oldest first, with its attempts so far."""
    rows = await connection.fetch(
        f"SELECT {_PAYMENT}, reconcile_attempts FROM payments WHERE reconcile_at <= now() "  # nosec B608 # noqa: S608 - _PAYMENT is a constant column list
        "ORDER BY reconcile_at LIMIT $1",
        limit,
    )
    return [(PaymentRow(*row[:-1]), row[-1]) for row in rows]


async def payment_of_charge(connection: asyncpg.Connection, charge_id: str) -> str | None:
    public_id: str | None = await connection.fetchval("SELECT public_id FROM payments WHERE charge_id = $1", charge_id)
    return public_id


async def email_of(connection: asyncpg.Connection, user_id: int) -> str:
    email: str = await connection.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    return email


async def event_is_new(connection: asyncpg.Connection, event_id: str, type_: str, charge_id: str | None) -> bool:
    """Record a provider event as seen; False when it was seen before (a duplicate: its effect is in already)."""
    inserted = await connection.fetchval(
        "INSERT INTO payment_events (event_id, type, charge_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event_id, type_, charge_id,
    )  # fmt: skip
    return bool(inserted)


async def reserve_refund(
    connection: asyncpg.Connection, public_id: str, payment_public_id: str, user_id: int, amount: int | None
) -> RefundRow | str:
    """A refund of `amount` (None: all that is left) of the user's payment, its amount reserved at once under the
    payment's row lock, so that refunds made at the same time never add up to more than the payment. The
    reason as text when there is nothing to refund."""
    payment_row = await connection.fetchrow(
        "SELECT id, amount, amount_refunded, status FROM payments WHERE public_id = $1 AND user_id = $2 FOR UPDATE",
        payment_public_id, user_id,
    )  # fmt: skip
    if payment_row is None:
        return "missing"
    left = payment_row["amount"] - payment_row["amount_refunded"]
    if payment_row["status"] != "succeeded":
        return "not-succeeded"
    wanted = left if amount is None else amount
    if wanted <= 0 or wanted > left:
        return "too-much"
    await connection.execute(
        "UPDATE payments SET amount_refunded = amount_refunded + $2, updated_at = now() WHERE id = $1",
        payment_row["id"], wanted,
    )  # fmt: skip
    row = await connection.fetchrow(
        "INSERT INTO refunds (public_id, payment_id, amount) VALUES ($1, $2, $3) RETURNING created_at",
        public_id, payment_row["id"], wanted,
    )  # fmt: skip
    return RefundRow(public_id, payment_public_id, wanted, "processing", None, row["created_at"])


async def refund(connection: asyncpg.Connection, public_id: str) -> tuple[RefundRow, str | None] | None:
    """The refund, and the charge it refunds."""
    row = await connection.fetchrow(
        "SELECT r.public_id, p.public_id, r.amount, r.status, r.refund_id, r.created_at, p.charge_id "
        "FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.public_id = $1",
        public_id,
    )
    return None if row is None else (RefundRow(*row[:-1]), row[-1])


async def settle_refund(connection: asyncpg.Connection, public_id: str, succeeded: bool, refund_id: str | None,
                        reason: str | None) -> None:  # fmt: skip
    """Processing becomes succeeded, or failed (and its reserved amount is given back to the payment)."""
    row = await connection.fetchrow(
        "UPDATE refunds SET status = $2, refund_id = coalesce(refund_id, $3), failure_reason = $4, updated_at = now() "
        "WHERE public_id = $1 AND status = 'processing' RETURNING payment_id, amount",
        public_id, "succeeded" if succeeded else "failed", refund_id, reason,
    )  # fmt: skip
    if row is not None and not succeeded:
        await connection.execute(
            "UPDATE payments SET amount_refunded = amount_refunded - $2, updated_at = now() WHERE id = $1",
            row["payment_id"], row["amount"],
        )  # fmt: skip


async def refunds_due(
    connection: asyncpg.Connection, quiet_seconds: float, limit: int
) -> list[tuple[RefundRow, str, float]]:
    """Refunds still processing that nothing touched for `quiet_seconds`, oldest first: each with the charge it
    refunds and its age in seconds."""
    rows = await connection.fetch(
        "SELECT r.public_id, p.public_id, r.amount, r.status, r.refund_id, r.created_at, p.charge_id, "
        "extract(epoch FROM now() - r.created_at)::float8 FROM refunds r JOIN payments p ON p.id = r.payment_id "
        "WHERE r.status = 'processing' AND r.updated_at <= now() - make_interval(secs => $1) "
        "ORDER BY r.updated_at LIMIT $2",
        quiet_seconds, limit,
    )  # fmt: skip
    return [(RefundRow(*row[:6]), row[6], row[7]) for row in rows]


async def touch_refund(connection: asyncpg.Connection, public_id: str) -> None:
    """Looked at, outcome still unknown: the job comes back after the quiet time."""
    await connection.execute("UPDATE refunds SET updated_at = now() WHERE public_id = $1", public_id)

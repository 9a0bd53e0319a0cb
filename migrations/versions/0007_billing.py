"""Billing: idempotency keys (any route may opt in), payments, refunds, and the provider's webhook events seen.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("operation", sa.Text, nullable=False, comment="the route's name: a key is not shared between"),
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False, comment="SHA-256 of the canonical request"),
        sa.Column("locked_until", sa.DateTime(timezone=True), comment="while a request holds it; NULL when done"),
        sa.Column("recovery_point", sa.Text, nullable=False, server_default="started"),
        sa.Column("resource_id", sa.Text, comment="what the request made, for a retry that resumes it"),
        sa.Column("response_status", sa.SmallInteger),
        sa.Column("response_headers", sa.LargeBinary, comment="JSON of the headers replayed with the body"),
        sa.Column("response_body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("user_id", "client_id", "key"),
        sa.CheckConstraint("(response_status IS NULL) = (response_body IS NULL)", name="response_whole"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])

    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("public_id", sa.Text, nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("customer", sa.Text, nullable=False, comment="the provider's customer to charge"),
        sa.Column("description", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="processing"),
        sa.Column("charge_id", sa.Text, unique=True, comment="the provider's charge, once known"),
        sa.Column("failure_code", sa.Text),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("reconcile_at", sa.DateTime(timezone=True), comment="when the job looks at it next; NULL: settled"),
        sa.Column("reconcile_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("status IN ('processing', 'succeeded', 'failed')", name="status"),
        sa.CheckConstraint("amount_refunded BETWEEN 0 AND amount", name="refunds_within_amount"),
        sa.CheckConstraint("amount_refunded = 0 OR status = 'succeeded'", name="refunds_only_succeeded"),
    )
    op.create_index("ix_payments_user_id_id", "payments", ["user_id", "id"])
    op.create_index(
        "ix_payments_reconcile_at", "payments", ["reconcile_at"], postgresql_where=sa.text("reconcile_at IS NOT NULL")
    )

    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("public_id", sa.Text, nullable=False, unique=True),
        sa.Column("payment_id", sa.BigInteger, sa.ForeignKey("payments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="processing"),
        sa.Column("refund_id", sa.Text, unique=True, comment="the provider's refund, once known"),
        sa.Column("failure_reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("status IN ('processing', 'succeeded', 'failed')", name="status"),
    )
    op.create_index("ix_refunds_payment_id", "refunds", ["payment_id"])

    op.create_table(
        "payment_events",
        sa.Column("event_id", sa.Text, primary_key=True, comment="the provider's: a duplicate changes nothing"),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("charge_id", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("ix_payment_events_received_at", "payment_events", ["received_at"])


def downgrade() -> None:
    op.drop_table("payment_events")
    op.drop_table("refunds")
    op.drop_table("payments")
    op.drop_table("idempotency_keys")

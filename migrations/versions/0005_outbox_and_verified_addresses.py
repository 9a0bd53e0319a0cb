"""The outbox (messages written in the transaction of the change that causes them, sent by the worker), and
verified e-mail addresses (accounts made before this revision count as verified).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("about", sa.Text, nullable=False, comment="whom it concerns, e.g. user:42 (for per-account limits)"),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('pending', 'sending', 'delivered', 'dead')", name="status"),
    )
    op.create_index(
        "ix_outbox_due", "outbox", ["next_attempt_at"], postgresql_where=sa.text("status IN ('pending', 'sending')")
    )
    op.create_index("ix_outbox_about_kind_created_at", "outbox", ["about", "kind", "created_at"])
    op.create_index(  # the gauges count what is not delivered; delivered rows are kept for days
        "ix_outbox_undelivered", "outbox", ["status"], postgresql_where=sa.text("status <> 'delivered'")
    )
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    op.add_column("users", sa.Column("verification_digest", sa.LargeBinary(32), comment="of the one valid link"))
    op.execute("UPDATE users SET email_verified_at = created_at")


def downgrade() -> None:
    op.drop_column("users", "verification_digest")
    op.drop_column("users", "email_verified_at")
    op.drop_table("outbox")

"""Sign-in challenges answered once: the digest of each spent challenge, kept until it would have expired.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spent_challenges",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, comment="the row can go after this"),
    )
    op.create_index("ix_spent_challenges_expires_at", "spent_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("spent_challenges")

"""Baseline: the empty schema that every later migration builds on.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to create: the domains add their tables in their own revisions."""


def downgrade() -> None:
    """Nothing to drop."""

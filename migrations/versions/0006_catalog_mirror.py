"""The catalog mirror: every version of every product the sync has seen (a row is valid from the catalog version
that made it until the one that changed or removed it), the mirror's state, and the provider's pages as last read
(their ETags, for If-None-Match).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLDEST_KEPT = "the oldest version whose rows are all still here"


def upgrade() -> None:
    op.create_table(
        "catalog_items",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False, comment="the catalog version that made this row"),
        sa.Column("valid_to", sa.BigInteger, comment="the version that changed or removed it; NULL: current"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False, comment="in the currency's minor unit"),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, comment="as the provider says"),
        sa.PrimaryKeyConstraint("id", "valid_from", name="pk_catalog_items"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_range"),
    )
    op.create_index("ix_catalog_items_current", "catalog_items", ["id"], unique=True,
                    postgresql_where=sa.text("valid_to IS NULL"))  # fmt: skip
    op.create_index("ix_catalog_items_valid_to", "catalog_items", ["valid_to"])
    op.create_table(
        "catalog_state",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("oldest_kept", sa.BigInteger, nullable=False, server_default="0", comment=OLDEST_KEPT),
        sa.Column("synced_at", sa.DateTime(timezone=True), comment="when the last good sync finished"),
        sa.CheckConstraint("singleton", name="one_row"),
    )
    op.execute("INSERT INTO catalog_state DEFAULT VALUES")
    op.create_table(
        "catalog_pages",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cursor", sa.Text, comment="the cursor that asked for it; NULL for the first page"),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("next_cursor", sa.Text),
        sa.Column("item_ids", postgresql.ARRAY(sa.Text), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_pages")
    op.drop_table("catalog_state")
    op.drop_table("catalog_items")

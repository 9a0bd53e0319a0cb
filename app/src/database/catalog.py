"""The catalog mirror's tables (migration 0006) and their SQL, on plain asyncpg connections.

`catalog_items` keeps each product's rows by catalog version: a row is valid from the version that wrote it until
the version that changed or removed it (NULL: still current). A sync that changes anything makes one new version in
one transaction; any version from `oldest_kept` on can be read whole, by any process, as of its own snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.src.database.metadata import metadata

CHANGED_CHANNEL = "catalog_changed"  # NOTIFY'd with the version when a sync commits

catalog_items = sa.Table(
    "catalog_items",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("valid_from", sa.BigInteger, primary_key=True),
    sa.Column("valid_to", sa.BigInteger),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
catalog_state = sa.Table(
    "catalog_state",
    metadata,
    sa.Column("singleton", sa.Boolean, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("oldest_kept", sa.BigInteger, nullable=False),
    sa.Column("synced_at", sa.DateTime(timezone=True)),
)
catalog_pages = sa.Table(
    "catalog_pages",
    metadata,
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("cursor", sa.Text),
    sa.Column("etag", sa.Text, nullable=False),
    sa.Column("next_cursor", sa.Text),
    sa.Column("item_ids", postgresql.ARRAY(sa.Text), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    price: int
    currency: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the provider's feed as read: the cursor that asked for it, its ETag, what came next, and the
    ids of the products on it."""

    position: int
    cursor: str | None
    etag: str
    next_cursor: str | None
    item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class State:
    version: int  # 0: never synced
    oldest_kept: int
    synced_at: dt.datetime | None  # when the last good sync finished


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    added: int
    changed: int
    removed: int


NEVER_SYNCED = State(version=0, oldest_kept=0, synced_at=None)
_CURRENT = "SELECT id, name, price, currency, updated_at FROM catalog_items WHERE valid_to IS NULL"
_AT_VERSION = (
    "SELECT id, name, price, currency, updated_at FROM catalog_items "
    "WHERE valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1)"
)


async def state(connection: asyncpg.Connection) -> State:
    row = await connection.fetchrow("SELECT version, oldest_kept, synced_at FROM catalog_state")
    return NEVER_SYNCED if row is None else State(*row)


async def known_pages(connection: asyncpg.Connection) -> dict[int, Page]:
    rows = await connection.fetch("SELECT position, cursor, etag, next_cursor, item_ids FROM catalog_pages")
    return {
        row["position"]: Page(row["position"], row["cursor"], row["etag"], row["next_cursor"], tuple(row["item_ids"]))
        for row in rows
    }


async def current(connection: asyncpg.Connection) -> tuple[State, list[Product]]:
    """The current version's products, read in one snapshot with the state."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        return await state(connection), [Product(*row) for row in await connection.fetch(_CURRENT)]


async def at_version(connection: asyncpg.Connection, wanted: int) -> tuple[State, list[Product]] | None:
    """The products of version `wanted`, read in one snapshot with the state; None when that version is not kept
    (older than `oldest_kept`, or not made yet)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        now = await state(connection)
        if wanted == now.version:
            rows = await connection.fetch(_CURRENT)
        elif now.oldest_kept <= wanted < now.version:
            rows = await connection.fetch(_AT_VERSION, wanted)
        else:
            return None
    return now, [Product(*row) for row in rows]


async def apply(
    connection: asyncpg.Connection, seen: Mapping[str, Product], unchanged: Iterable[str], pages: Sequence[Page],
    versions_kept: int,
) -> Applied:  # fmt: skip
    """In one transaction: the mirror becomes `seen` plus the `unchanged` ids (of pages that answered 304), as a new
    version if anything differs; the pages are remembered, the sync's end recorded, and every process told."""
    async with connection.transaction():
        await connection.execute("INSERT INTO catalog_state (singleton) VALUES (true) ON CONFLICT DO NOTHING")
        before: int = await connection.fetchval("SELECT version FROM catalog_state FOR UPDATE")
        current = {row["id"]: Product(*row) for row in await connection.fetch(_CURRENT)}
        kept = set(seen) | set(unchanged)
        added = [product for id_, product in seen.items() if id_ not in current]
        changed = [product for id_, product in seen.items() if id_ in current and current[id_] != product]
        removed = [id_ for id_ in current if id_ not in kept]
        after = before
        if added or changed or removed:
            after = before + 1
            oldest = max(1, after - versions_kept + 1)
            await connection.execute(
                "UPDATE catalog_items SET valid_to = $1 WHERE valid_to IS NULL AND id = ANY($2::text[])",
                after, [product.id for product in changed] + removed,
            )  # fmt: skip
            await connection.copy_records_to_table(
                "catalog_items",
                records=[(p.id, after, None, p.name, p.price, p.currency, p.updated_at) for p in added + changed],
                columns=["id", "valid_from", "valid_to", "name", "price", "currency", "updated_at"],
            )
            await connection.execute("DELETE FROM catalog_items WHERE valid_to <= $1", oldest)
            await connection.execute("UPDATE catalog_state SET version = $1, oldest_kept = $2", after, oldest)
        await connection.execute("UPDATE catalog_state SET synced_at = now()")
        await connection.execute("DELETE FROM catalog_pages")
        await connection.copy_records_to_table(
            "catalog_pages",
            records=[(p.position, p.cursor, p.etag, p.next_cursor, list(p.item_ids)) for p in pages],
            columns=["position", "cursor", "etag", "next_cursor", "item_ids"],
        )
        await connection.execute("SELECT pg_notify($1, $2)", CHANGED_CHANNEL, str(after))
    return Applied(after, len(added), len(changed), len(removed))

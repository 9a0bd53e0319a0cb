"""The outbox table (migration 0005) and its SQL: messages added in the transaction of the change that causes
them, claimed by dispatchers with a lease (SKIP LOCKED: two dispatchers never take the same message at once)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.src.database.metadata import metadata

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("about", sa.Text, nullable=False),
    sa.Column("payload", postgresql.JSONB, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)
_WAITING = ("pending", "sending")


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    about: str  # whom it concerns ("user:42"), for per-account limits
    payload: dict[str, Any]
    idempotency_key: str  # the provider sends a key once, however often it is asked


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int  # this attempt included


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    sending: int
    dead: int
    oldest_pending_seconds: float


def _seconds(value: float) -> Any:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, value)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def waiting_at_least(self, count: int) -> bool:
        """Whether `count` messages or more wait to be sent (counting no further than that)."""
        waiting = sa.select(sa.literal(1)).where(outbox.c.status.in_(_WAITING)).limit(count).subquery()
        found = (await self.session.execute(sa.select(sa.func.count()).select_from(waiting))).scalar_one()
        return int(found) >= count

    async def add(self, message: Message) -> bool:
        """Add the message; False when one with its idempotency key is there already."""
        statement = (
            insert(outbox)
            .values(kind=message.kind, about=message.about, payload=message.payload,
                    idempotency_key=message.idempotency_key)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(outbox.c.id)
        )  # fmt: skip
        return (await self.session.execute(statement)).first() is not None

    async def recent(self, about: str, kind: str, within: dt.timedelta) -> int:
        statement = sa.select(sa.func.count()).where(
            outbox.c.about == about, outbox.c.kind == kind, outbox.c.created_at > sa.func.now() - within
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]:
        """Up to `limit` messages due (or whose lease ran out: their dispatcher died), leased to this caller.

        The due rows are picked and locked once, in a materialized CTE, and then updated: as `id IN (subquery)`,
        the planner may run the subquery again for each row it joins, each run picking its own `limit` (a claim
        of 2 took 4 in a run of the tests)."""
        due = (
            sa.select(outbox.c.id)
            .where(
                sa.or_(
                    sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= sa.func.now()),
                    sa.and_(outbox.c.status == "sending", outbox.c.lease_until < sa.func.now()),
                )
            )
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED")  # never folded back into the UPDATE
        )
        statement = (
            sa.update(outbox)
            .where(outbox.c.id == due.c.id)
            .values(status="sending", attempts=outbox.c.attempts + 1,
                    lease_until=sa.func.now() + _seconds(lease_seconds))
            .returning(outbox.c.id, outbox.c.kind, outbox.c.payload, outbox.c.idempotency_key, outbox.c.attempts)
        )  # fmt: skip
        return [Claimed(*row) for row in (await self.session.execute(statement)).all()]

    async def delivered(self, message_ids: list[int]) -> None:
        if message_ids:
            statement = (
                sa.update(outbox)
                .where(outbox.c.id.in_(message_ids))
                .values(status="delivered", delivered_at=sa.func.now(), lease_until=None, last_error=None)
            )
            await self.session.execute(statement)

    async def retry_later(self, message_id: int, delay_seconds: float, error: str) -> None:
        await self._set(
            message_id, status="pending", next_attempt_at=sa.func.now() + _seconds(delay_seconds),
            lease_until=None, last_error=error,
        )  # fmt: skip

    async def dead(self, message_id: int, error: str) -> None:
        await self._set(message_id, status="dead", lease_until=None, last_error=error)

    async def _set(self, message_id: int, **values: Any) -> None:
        await self.session.execute(sa.update(outbox).where(outbox.c.id == message_id).values(**values))

    async def stats(self) -> OutboxStats:
        undelivered = sa.select(outbox.c.status, sa.func.count()).where(outbox.c.status != "delivered")
        counts: dict[str, int] = dict((await self.session.execute(undelivered.group_by(outbox.c.status))).all())
        oldest = sa.select(sa.func.min(outbox.c.created_at)).where(outbox.c.status.in_(_WAITING)).scalar_subquery()
        age = (await self.session.execute(sa.select(sa.func.extract("epoch", sa.func.now() - oldest)))).scalar_one()
        return OutboxStats(counts.get("pending", 0), counts.get("sending", 0), counts.get("dead", 0), float(age or 0.0))

    async def dead_letters(self, limit: int) -> list[tuple[int, str, int, str | None]]:
        statement = (
            sa.select(outbox.c.id, outbox.c.kind, outbox.c.attempts, outbox.c.last_error)
            .where(outbox.c.status == "dead")
            .order_by(outbox.c.id.desc())
            .limit(limit)
        )
        return [
            (row.id, row.kind, row.attempts, row.last_error) for row in (await self.session.execute(statement)).all()
        ]


class OutboxStatements:
    """The outbox's admission and writes on a plain asyncpg connection, inside the caller's transaction (the
    billing paths, which run on asyncpg); the same SQL as OutboxRepository's."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def waiting_at_least(self, count: int) -> bool:
        found: int = await self._connection.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status IN ('pending', 'sending') LIMIT $1) AS waiting",
            count,
        )
        return found >= count

    async def add(self, message: Message) -> bool:
        added = await self._connection.fetchval(
            "INSERT INTO outbox (kind, about, payload, idempotency_key) VALUES ($1, $2, $3::jsonb, $4) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING true",
            message.kind, message.about, orjson.dumps(message.payload).decode(), message.idempotency_key,
        )  # fmt: skip
        return bool(added)

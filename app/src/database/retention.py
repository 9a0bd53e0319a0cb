"""Rows past their use, removed by the cleanup job: each statement deletes what its retention no longer keeps."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.src.database.auth_tables import login_failures, refresh_tokens, sessions, spent_challenges
from app.src.database.job_runs import job_runs
from app.src.database.outbox import outbox


def _before(age: dt.timedelta) -> sa.ColumnElement[dt.datetime]:
    return sa.func.now() - age


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ended_sessions(self, kept_after_expiry: dt.timedelta) -> int:
        """Sessions past their expiry by `kept_after_expiry`, revoked or not, and their refresh tokens."""
        ended = sa.select(sessions.c.id).where(sessions.c.expires_at < _before(kept_after_expiry))
        await self.session.execute(sa.delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(ended)))
        return await self._count(sa.delete(sessions).where(sessions.c.expires_at < _before(kept_after_expiry)))

    async def login_failures(self, window: dt.timedelta) -> int:
        """Failures older than the longest lockout window: they count for nothing any more."""
        return await self._count(sa.delete(login_failures).where(login_failures.c.failed_at < _before(window)))

    async def spent_challenges(self) -> int:
        return await self._count(sa.delete(spent_challenges).where(spent_challenges.c.expires_at < sa.func.now()))

    async def job_runs(self, kept: dt.timedelta) -> int:
        return await self._count(sa.delete(job_runs).where(job_runs.c.started_at < _before(kept)))

    async def delivered_messages(self, kept: dt.timedelta) -> int:
        delivered = sa.and_(outbox.c.status == "delivered", outbox.c.delivered_at < _before(kept))
        return await self._count(sa.delete(outbox).where(delivered))

    async def idempotency_keys(self, kept: dt.timedelta) -> int:
        """Keys past their retention, but for one a request holds right now."""
        result = await self.session.execute(
            sa.text(
                "DELETE FROM idempotency_keys WHERE created_at < now() - CAST(:kept AS interval) "
                "AND (locked_until IS NULL OR locked_until < now())"
            ),
            {"kept": kept},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _count(self, statement: sa.Delete) -> int:
        result = await self.session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

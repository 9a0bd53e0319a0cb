"""Ready means: the database answers within the deadline and its schema is at this build's newest migration, or
past it. Past it happens in every rolling upgrade: the new version's migration runs first (a one-shot job), and the
replicas of the version before must keep serving until they are replaced, so migrations are written to be
compatible with the version before (expand now, contract a release later). A revision this build knows but that is
older than its newest means `migrate` has not run: not ready.

Probes, load balancers and curious clients may ask many times a second; the answer is taken from the database
at most once per `cache_seconds`, and callers that ask while it is being taken share that one query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from app.src.api.common.errors import NotReadyError
from app.src.api.common.models.service import Readiness
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

RETRY_AFTER_SECONDS = 5
_log = module_logger("readiness")


class ReadinessCheck:
    def __init__(
        self,
        database: Database,
        head_revision: str | None,
        older_revisions: frozenset[str],
        deadline: float,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._head_revision = head_revision
        self._older_revisions = older_revisions
        self._deadline = deadline
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._answer: asyncio.Future[Readiness] | None = None
        self._answered_at = -float("inf")

    async def check(self) -> Readiness:
        """Readiness, or NotReadyError; from the answer of the last second if there is one."""
        if self._answer is None or (self._answer.done() and self._clock() - self._answered_at >= self._cache_seconds):
            self._answer = asyncio.ensure_future(self._ask())
            self._answer.add_done_callback(self._answered)
        return await asyncio.shield(self._answer)  # a caller that gives up does not cancel the others' answer

    def _answered(self, _: asyncio.Future[Readiness]) -> None:
        self._answered_at = self._clock()

    async def _ask(self) -> Readiness:
        try:
            async with asyncio.timeout(self._deadline):
                revision = await self._database.schema_revision()
        except (SQLAlchemyError, OSError, TimeoutError):
            raise NotReadyError("The database is not reachable.", RETRY_AFTER_SECONDS) from None
        if revision is None or revision in self._older_revisions or self._head_revision is None:
            # Which revisions are where is for operators, not for whoever asks.
            _log.warning(
                "database schema is not at this build's migration", database=revision, build=self._head_revision
            )
            raise NotReadyError("The database schema is not at the migration this build needs.", RETRY_AFTER_SECONDS)
        return Readiness(schema_revision=revision)

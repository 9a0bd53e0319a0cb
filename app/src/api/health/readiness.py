"""Ready means: the database answers within the deadline and its schema is at the newest migration."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from app.src.api.common.errors import NotReadyError
from app.src.api.common.models.service import Readiness

if TYPE_CHECKING:
    from app.database import Database

RETRY_AFTER_SECONDS = 5


class ReadinessCheck:
    def __init__(self, database: Database, head_revision: str | None, deadline: float) -> None:
        self._database = database
        self._head_revision = head_revision
        self._deadline = deadline

    async def check(self) -> Readiness:
        try:
            async with asyncio.timeout(self._deadline):
                revision = await self._database.schema_revision()
        except (SQLAlchemyError, OSError, TimeoutError):
            raise NotReadyError("The database is not reachable.", RETRY_AFTER_SECONDS) from None
        if revision is None or revision != self._head_revision:
            raise NotReadyError(
                f"The database schema is at {revision or 'no revision'}; this build needs {self._head_revision}.",
                RETRY_AFTER_SECONDS,
            )
        return Readiness(schema_revision=revision)

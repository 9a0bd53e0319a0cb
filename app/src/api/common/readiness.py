"""Ready means: the database answers within the deadline and its schema is at the newest migration."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import SQLAlchemyError

from ....database import Database
from ...utils.problems import ProblemError
from .models.service import Readiness

RETRY_AFTER_SECONDS = "5"


async def check_readiness(database: Database, head_revision: str | None, deadline: float) -> Readiness:
    try:
        async with asyncio.timeout(deadline):
            revision = await database.schema_revision()
    except (SQLAlchemyError, OSError, TimeoutError):
        raise ProblemError(
            503,
            "The database is not reachable.",
            slug="not-ready",
            title="Not ready",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    if revision is None or revision != head_revision:
        raise ProblemError(
            503,
            f"The database schema is at {revision or 'no revision'}; this build needs {head_revision}.",
            slug="not-ready",
            title="Not ready",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return Readiness(schema_revision=revision)

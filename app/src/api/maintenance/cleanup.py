"""The cleanup job's rules: what is kept, for how long, and what goes in one transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.src.database.retention import RetentionRepository
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

_log = module_logger("cleanup")


@dataclass(frozen=True, slots=True)
class Retention:
    sessions_after_expiry: dt.timedelta = dt.timedelta(days=1)
    login_failures: dt.timedelta = dt.timedelta(hours=1)  # the longest lockout window
    job_runs: dt.timedelta = dt.timedelta(days=7)
    messages: dt.timedelta = dt.timedelta(days=7)  # delivered outbox messages (dead ones stay until looked at)
    idempotency_keys: dt.timedelta = dt.timedelta(hours=24)


class Cleanup:
    def __init__(self, database: Database, retention: Retention) -> None:
        self._database = database
        self._retention = retention

    async def run(self) -> dict[str, int]:
        """Remove what no retention keeps, all or nothing; how many rows of each kind went."""
        async with self._database.unit_of_work() as uow:
            rows = uow.repository(RetentionRepository)
            removed = {
                "sessions": await rows.ended_sessions(self._retention.sessions_after_expiry),
                "login_failures": await rows.login_failures(self._retention.login_failures),
                "spent_challenges": await rows.spent_challenges(),
                "job_runs": await rows.job_runs(self._retention.job_runs),
                "delivered_messages": await rows.delivered_messages(self._retention.messages),
                "idempotency_keys": await rows.idempotency_keys(self._retention.idempotency_keys),
            }
            await uow.commit()
        _log.info("cleanup done", **removed)
        return removed

"""The bounded outbox: messages are written in the transaction of the change that causes them, and a worker
sends them later (app/src/api/messaging/dispatcher.py).

The bound (OUTBOX_MAX_PENDING) is checked when work is admitted, before any effect: a request that would cause
messages is refused with 503 while the bound is reached, and nothing of it is committed. A message recording an
effect already made elsewhere is never refused (`add` after `admit`, or on its own). A best-effort message (a login
alert) over the bound is not added, and that is counted and logged: nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from app.src.api.common.errors import UnavailableError
from app.src.database.outbox import Message, OutboxRepository
from app.src.utils.logs import module_logger

FULL_RETRY_AFTER = 10
ADMIT_CHECK_SECONDS = 1.0
_log = module_logger("outbox")


class OutboxTable(Protocol):
    """The outbox's table inside the caller's transaction: OutboxRepository (SQLAlchemy) or OutboxStatements."""

    async def waiting_at_least(self, count: int) -> bool: ...

    async def add(self, message: Message) -> bool: ...


class Outbox:
    def __init__(self, bound: int, registry: CollectorRegistry) -> None:
        self._bound = bound
        self._full = False
        self._checked_at = -math.inf
        self._refused = Counter(
            "outbox_refused", "Best-effort messages not added because the outbox was full", ["kind"],
            registry=registry,
        )  # fmt: skip

    def unregister(self, registry: CollectorRegistry) -> None:
        registry.unregister(self._refused)

    async def admit(self, repository: OutboxTable) -> None:
        """Before any effect of work that will cause messages: UnavailableError while the outbox is full. The
        count is taken at most once per ADMIT_CHECK_SECONDS in a process (it reads up to `bound` rows, and it is
        the same answer for every request meanwhile): the bound may be passed by what a second admits."""
        now = time.monotonic()
        if now - self._checked_at >= ADMIT_CHECK_SECONDS:
            self._full = await repository.waiting_at_least(self._bound)
            self._checked_at = now
        if self._full:
            raise UnavailableError(
                "Too many messages wait to be sent; try again shortly.", FULL_RETRY_AFTER, code="outbox-full"
            )

    async def add(self, repository: OutboxTable, message: Message) -> None:
        await repository.add(message)

    async def offer(self, repository: OutboxTable, message: Message) -> bool:
        """A best-effort message: added unless the outbox is full (then counted and logged); whether it was."""
        if await repository.waiting_at_least(self._bound):
            self._refused.labels(message.kind).inc()
            _log.warning("outbox full: best-effort message not sent", kind=message.kind, about=message.about)
            return False
        return await repository.add(message)

    @staticmethod
    async def sent_recently(repository: OutboxRepository, about: str, kind: str, within: dt.timedelta) -> int:
        return await repository.recent(about, kind, within)

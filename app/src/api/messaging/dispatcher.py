"""The worker's dispatcher: it claims due messages from the outbox with a lease, sends each through the provider
with the message's own idempotency key (so a message sent twice, after a lost answer or a dispatcher that died,
arrives once), and records the result: delivered; or tried again later with exponential backoff and jitter; or,
after `max_attempts` or a refusal no retry can change, dead-lettered (kept, counted and listed)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from app.src.api.common.providers import (
    EmailSender,
    ProviderError,
    ProviderRateLimitedError,
    ProviderRejectedError,
)
from app.src.database.outbox import Claimed, OutboxRepository, OutboxStats
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

_log = module_logger("dispatcher")
STATS_SECONDS = 1.0
ROUNDS_AT_ONCE = 2


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    concurrency: int = 4  # messages sent at once (the provider client adds its own rate limit and bulkhead)
    batch: int = 32
    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    lease_seconds: float = 60.0  # a claimed message whose dispatcher died is claimed again after this
    idle_seconds: float = 0.5  # how long to wait when nothing is due


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter("outbox_sent", "Send attempts of outbox messages by result", ["result"], registry=registry)
        self.pending = Gauge("outbox_pending", "Messages waiting for their next attempt", registry=registry)
        self.in_flight = Gauge("outbox_in_flight", "Messages claimed by a dispatcher", registry=registry)
        self.dead = Gauge("outbox_dead_lettered", "Messages given up on, kept for inspection", registry=registry)
        self.oldest = Gauge("outbox_oldest_pending_age_seconds", "Age of the oldest waiting message", registry=registry)

    def show(self, stats: OutboxStats) -> None:
        self.pending.set(stats.pending)
        self.in_flight.set(stats.sending)
        self.dead.set(stats.dead)
        self.oldest.set(stats.oldest_pending_seconds)


class Dispatcher:
    def __init__(
        self,
        database: Database,
        email: EmailSender,
        policy: DispatchPolicy,
        metrics: OutboxMetrics,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._database = database
        self._email = email
        self._policy = policy
        self._metrics = metrics
        self._jitter = rng
        self._slots = asyncio.Semaphore(policy.concurrency)
        self._stats_read_at = -math.inf

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set; what is in flight then finishes (or its lease lets another take it).

        Two rounds run at once, each claiming a batch of its own and sharing the send slots, so one round's
        database work (claim, record) overlaps the other's sends."""
        await asyncio.gather(*(self._rounds(stop) for _ in range(ROUNDS_AT_ONCE)))
        with contextlib.suppress(Exception):  # the gauges as the dispatcher leaves them, when the database answers
            await self._show_stats(now=True)

    async def _rounds(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except Exception as error:  # noqa: BLE001 - a database hiccup must not end the dispatcher
                _log.warning("dispatch round failed", error=type(error).__name__)
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):  # idle until the next look, or until told to stop
                    async with asyncio.timeout(self._policy.idle_seconds):
                        await stop.wait()

    async def dispatch_once(self) -> int:
        """Claim one batch of due messages, send them, and record how each went in one transaction; how many were
        claimed. (A dispatcher that dies before recording sends its batch again once the lease runs out: the
        idempotency keys make the provider deliver each message once.)"""
        async with self._database.unit_of_work() as uow:
            claimed = await uow.repository(OutboxRepository).claim(self._policy.batch, self._policy.lease_seconds)
            await uow.commit()
        if not claimed:
            await self._show_stats()
            return 0
        failures = await asyncio.gather(*(self._send(message) for message in claimed))
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(OutboxRepository)
            await repository.delivered([message.id for message, failed in zip(claimed, failures, strict=True)
                                        if failed is None])  # fmt: skip
            for message, failed in zip(claimed, failures, strict=True):
                if failed is not None:
                    await self._record(repository, message, *failed)
            await uow.commit()
        self._metrics.sent.labels("delivered").inc(failures.count(None))
        await self._show_stats()
        return len(claimed)

    async def _send(self, message: Claimed) -> tuple[str, float | None] | None:
        """None once sent; else why not, and in how many seconds to try again (None: never)."""
        if message.payload.get("channel") != "email":  # written by a newer release, or by hand: no sender here
            return f"no sender for the channel of a {message.kind} message", None
        async with self._slots:
            try:
                await self._email.send_email(
                    message.payload["to"], message.payload["subject"], message.payload["body"],
                    idempotency_key=message.idempotency_key,
                )  # fmt: skip
            except ProviderError as error:
                final = isinstance(error, ProviderRejectedError) or message.attempts >= self._policy.max_attempts
                reason = f"{type(error).__name__}: {error}"
                return reason, None if final else self._backoff(message.attempts, error)
        return None

    async def _record(
        self, repository: OutboxRepository, message: Claimed, reason: str, retry_in: float | None
    ) -> None:
        """A failed attempt: tried again in `retry_in` seconds, or (None) dead-lettered."""
        reason = reason[:500]
        if retry_in is None:
            await repository.dead(message.id, reason)
            _log.error("outbox message dead-lettered", message_id=message.id, attempts=message.attempts, error=reason)
        else:
            await repository.retry_later(message.id, retry_in, reason)
        self._metrics.sent.labels("dead_lettered" if retry_in is None else "retry").inc()

    async def _show_stats(self, *, now: bool = False) -> None:
        """The gauges, read at most once per STATS_SECONDS unless `now` (they count rows: not on every batch)."""
        if not now and time.monotonic() - self._stats_read_at < STATS_SECONDS:
            return
        self._stats_read_at = time.monotonic()
        async with self._database.unit_of_work() as uow:
            self._metrics.show(await uow.repository(OutboxRepository).stats())

    def _backoff(self, attempts: int, error: ProviderError) -> float:
        """Full jitter over a doubling cap; never sooner than a provider's Retry-After."""
        delay = self._jitter(0, min(self._policy.backoff_cap, self._policy.backoff_base * 2 ** (attempts - 1)))
        if isinstance(error, ProviderRateLimitedError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

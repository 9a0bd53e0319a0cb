"""The worker's dispatcher: it claims due messages from the outbox with a lease, sends each through the provider
with the message's own idempotency key (so a message sent twice, after a lost answer or a dispatcher that died,
arrives once), and records the result: delivered; or tried again later with exponential backoff and jitter; or,
after `max_attempts` or a refusal no retry can change, dead-lettered (kept, counted and listed)."""

from __future__ import annotations

import asyncio
import random
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

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set; what is in flight then finishes (or its lease lets another take it)."""
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except Exception as error:  # noqa: BLE001 - a database hiccup must not end the dispatcher
                _log.warning("dispatch round failed", error=type(error).__name__)
                sent = 0
            if not sent:
                try:
                    async with asyncio.timeout(self._policy.idle_seconds):
                        await stop.wait()
                except TimeoutError:
                    pass

    async def dispatch_once(self) -> int:
        """Claim one batch of due messages and send them; how many were claimed."""
        async with self._database.unit_of_work() as uow:
            claimed = await uow.repository(OutboxRepository).claim(self._policy.batch, self._policy.lease_seconds)
            await uow.commit()
        await asyncio.gather(*(self._send(message) for message in claimed))
        async with self._database.unit_of_work() as uow:
            self._metrics.show(await uow.repository(OutboxRepository).stats())
        return len(claimed)

    async def _send(self, message: Claimed) -> None:
        if message.payload.get("channel") != "email":  # written by a newer release, or by hand: no sender here
            await self._record(message, f"no sender for the channel of a {message.kind} message", retry_in=None)
            return
        async with self._slots:
            try:
                await self._email.send_email(
                    message.payload["to"], message.payload["subject"], message.payload["body"],
                    idempotency_key=message.idempotency_key,
                )  # fmt: skip
            except ProviderError as error:
                final = isinstance(error, ProviderRejectedError) or message.attempts >= self._policy.max_attempts
                reason = f"{type(error).__name__}: {error}"
                await self._record(message, reason, retry_in=None if final else self._backoff(message.attempts, error))
                return
        async with self._database.unit_of_work() as uow:
            await uow.repository(OutboxRepository).delivered(message.id)
            await uow.commit()
        self._metrics.sent.labels("delivered").inc()

    async def _record(self, message: Claimed, reason: str, retry_in: float | None) -> None:
        """A failed attempt: tried again in `retry_in` seconds, or (None) dead-lettered."""
        reason = reason[:500]
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(OutboxRepository)
            if retry_in is None:
                await repository.dead(message.id, reason)
            else:
                await repository.retry_later(message.id, retry_in, reason)
            await uow.commit()
        final = retry_in is None
        self._metrics.sent.labels("dead_lettered" if final else "retry").inc()
        if final:
            _log.error("outbox message dead-lettered", message_id=message.id, attempts=message.attempts, error=reason)

    def _backoff(self, attempts: int, error: ProviderError) -> float:
        """Full jitter over a doubling cap; never sooner than a provider's Retry-After."""
        delay = self._jitter(0, min(self._policy.backoff_cap, self._policy.backoff_base * 2 ** (attempts - 1)))
        if isinstance(error, ProviderRateLimitedError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

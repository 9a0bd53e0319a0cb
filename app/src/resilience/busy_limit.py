"""The concurrency limit follows how busy the event loop is: smaller while its thread computes without a pause,
larger while it has time to spare.

A request's slot bounds the work the loop runs at once (a request waiting on a provider lends it,
app/src/resilience/lifo_slots.py). While the loop's thread is on the CPU nearly all the time, every request
admitted beyond the few the core can finish only adds to the latency of all of them (Little's law: time in the
process is requests in flight over the rate served). While it waits for the database, more requests in flight
cost the core nothing, and shedding them would help nobody.

Latency-gradient limits (Netflix's concurrency-limits, Envoy's adaptive concurrency) read the requests' own
latency, which here is much of it the database's: they would shrink the limit during a database stall, when the
loop is idle. The event loop's lag, tried first, did not tell overload apart: at twice the capacity the loop
still turns every 1-3 ms, as it does at half. The share of wall time the loop's thread spends on the CPU does:
near 1 under overload, the offered share of capacity below it, low during a stall.

Additive increase, multiplicative decrease (TCP's rule): each probe that finds the loop busier than `target` halves
the limit (down to `floor`); each that finds it below, with at least half the limit in use at some moment since the
last probe, adds one (up to `ceiling`). A limit grows only while it is used, as Netflix's AIMDLimit does (`inflight * 2
>= limit`) and as TCP validates its window (RFC 7661): room nobody used says nothing of what the core can take. The
limit starts at `floor` for the same reason, so an idle process does not sit at its ceiling. Measured before this
rule (docs/performance.md): at the onset of twice the capacity, the ceiling's 16 requests admitted at once and the
cascade after them (a slow answer makes clients open connections) held accepted latency at 20-60 ms for 120 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from app.src.resilience.lifo_slots import LifoSlots

DECREASE = 0.5
# A loop on the CPU more than this share of a whole window (INBOUND_MAX_WAIT) is overloaded, and a queue would stand.
# Measured at twice the capacity, the share over 100 ms was 0.82 or more in 99% of probes; at 10% load, at most 0.31.
# One probe is not enough: a 10 ms burst of work (a large answer, a collection) at light load crossed the target.
SATURATED = 0.75


@dataclass(frozen=True, slots=True)
class BusyRule:
    """The next limit from how busy the loop was since the last probe (its thread's CPU time over wall time)."""

    floor: int
    ceiling: int
    target: float

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError(f"the limit's floor ({self.floor}) must be 1 or more and at most its ceiling")

    def next_limit(self, limit: int, busy: float, peak: int) -> int:
        """`peak`: the most slots in use at once since the last probe."""
        if busy > self.target:
            return max(self.floor, int(limit * DECREASE))
        if peak * 2 >= limit:
            return min(self.ceiling, limit + 1)
        return limit


class BusyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.busy = Gauge("event_loop_busy_ratio", "The event loop thread's CPU time over wall time, at the last probe",
                          registry=registry)  # fmt: skip


class BusyLimit:
    """Probes the running loop every `interval` seconds and sets `slots`' limit by `rule`, and whether they are
    `overloaded`: the loop on the CPU more than SATURATED of the last `window` seconds."""

    def __init__(
        self, slots: LifoSlots, rule: BusyRule, *, interval: float, window: float, metrics: BusyMetrics
    ) -> None:
        self._slots = slots
        self._rule = rule
        self._interval = interval
        self._readings = max(1, round(window / interval))  # probes in a window
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[None]:
        """The limit follows the loop while the block runs."""
        probe = asyncio.create_task(self._probe(), name="busy-limit")
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe

    async def _probe(self) -> None:
        readings = deque([(time.perf_counter(), time.thread_time())], maxlen=self._readings + 1)  # the loop's thread
        while True:
            await asyncio.sleep(self._interval)
            readings.append((time.perf_counter(), time.thread_time()))
            busy = _busy(readings[-2], readings[-1])
            self._metrics.busy.set(busy)
            self._slots.overloaded = _busy(readings[0], readings[-1]) > SATURATED
            self._slots.set_limit(self._rule.next_limit(self._slots.limit, busy, self._slots.take_peak()))


def _busy(since: tuple[float, float], now: tuple[float, float]) -> float:
    """The share of the wall time between two (wall, CPU) readings the thread spent on the CPU."""
    return (now[1] - since[1]) / max(now[0] - since[0], 1e-9)

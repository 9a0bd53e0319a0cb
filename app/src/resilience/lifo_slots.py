"""Concurrency slots handed out newest-first, with a shorter wait once a queue stands, lent while a request waits
on a provider.

Under overload a queue of waiters in arrival order serves the oldest, which have waited longest and whose clients
are likeliest to have given up: every request then pays the whole wait, and the latency of all of them rises
together. Served newest-first (Facebook's adaptive LIFO, in "Fail at Scale"), the requests that get a slot have
barely waited, and the ones at the back reach their bounded wait and are refused at once (503 + Retry-After).

A queue that forms and drains absorbs a burst; a queue that stands only adds latency. As in the same paper's
CoDel variant: while no slot has been free for a whole `max_wait`, a new waiter waits at most `standing_wait`. A limit
that follows how busy the event loop is (app/src/resilience/busy_limit.py) says it sooner: while the loop's thread
has had almost no time to spare for a while (`overloaded`), any queue stands: nothing will drain it faster.

The slots bound the work the event loop runs at once. A request waiting on a provider runs nothing meanwhile, so
it lends its slot (`lend_slot`) and takes one back, ahead of every new waiter, when the provider has answered: a
slow provider then holds provider places (its bulkhead), not the slots every other route needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar


class LifoSlots:
    def __init__(
        self, limit: int, *, standing_wait: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._free = limit
        self._limit = limit
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._returning: deque[asyncio.Future[None]] = deque()
        self._standing_wait = standing_wait
        self._clock = clock
        self._free_at = clock()  # the last moment a slot was free
        self._peak = 0  # the most slots in use at once since take_peak() last read it
        self.overloaded = False  # the event loop has had no time to spare for a while (a limit that follows it says)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._limit - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def take_peak(self) -> int:
        """The most slots in use at once since the last call."""
        peak, self._peak = max(self._peak, self.in_use), self.in_use
        return peak

    def try_take(self) -> bool:
        if self._free > 0:
            self._free -= 1
            self._free_at = self._clock()
            self._peak = max(self._peak, self.in_use)
            return True
        return False

    def standing(self, max_wait: float) -> bool:
        """A queue would stand, not drain: the loop is overloaded, or no slot was free for `max_wait`."""
        return self.overloaded or self._clock() - self._free_at > max_wait

    def wait_for(self, max_wait: float) -> float:
        """How long a new waiter may wait: `max_wait`, or `standing_wait` once a queue stands."""
        if self._standing_wait is not None and self.standing(max_wait):
            return min(max_wait, self._standing_wait)
        return max_wait

    async def take(self, max_wait: float) -> bool:
        """A slot within `max_wait` seconds (less once a queue stands) (True), or none (False); the newest waiter
        is served first."""
        if self.try_take():
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait_for(max_wait)):
                await waiter
        except TimeoutError:
            return self._gave_up(waiter, self._waiters)
        except asyncio.CancelledError:
            self._gave_up(waiter, self._waiters, keep=False)
            raise
        return True

    async def take_back(self) -> None:
        """A slot for a request that lent its own: ahead of every new waiter, and without a time limit."""
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._returning.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            self._gave_up(waiter, self._returning, keep=False)
            raise

    def set_limit(self, limit: int) -> None:
        """A new limit, at once: room it adds goes to waiters; slots in use beyond it end as they are given back."""
        added = limit - self._limit
        self._limit = limit
        self._free += min(added, 0)
        for _ in range(added):
            self.give_back()
        self._peak = max(self._peak, self.in_use)

    def give_back(self) -> None:
        if self._free < 0:  # over a limit that shrank: the slot is not handed on
            self._free += 1
            return
        while self._returning:
            waiter = self._returning.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        while self._waiters:
            waiter = self._waiters.pop()  # the newest
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
        self._free_at = self._clock()

    def _gave_up(self, waiter: asyncio.Future[None], queue: deque[asyncio.Future[None]], *, keep: bool = True) -> bool:
        """The wait ended without a slot, unless one was handed over just as it ended: kept, or passed on."""
        if waiter.done() and not waiter.cancelled():
            if keep:
                return True
            self.give_back()
            return False
        waiter.cancel()
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        return False


class Lease:
    """One request's slot: held from admission to the end of the request, except while lent. A slot the HTTP edge
    took is `claim`ed by the app's shedder when the request reaches it; until then the edge answers for it."""

    def __init__(self, slots: LifoSlots) -> None:
        self._slots = slots
        self.held = True
        self.ended = False
        self.claimed = False

    def claim(self) -> bool:
        """The request reached the app with this slot (True), unless the edge already gave it back."""
        self.claimed = not self.ended
        return self.claimed

    def end(self) -> None:
        self.ended = True
        if self.held:
            self.held = False
            self._slots.give_back()

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        if not self.held or self.ended:
            yield
            return
        self.held = False
        self._slots.give_back()
        try:
            yield
        except asyncio.CancelledError:
            raise  # the request is ending: it takes no slot back (waiting for one would hold up its cancellation)
        except BaseException:
            await self._take_back()
            raise
        else:
            await self._take_back()

    async def _take_back(self) -> None:
        if self.ended:
            return
        await self._slots.take_back()
        self.held = not self.ended  # the request may have ended while this waited (a task outliving it)
        if not self.held:
            self._slots.give_back()


current_lease: ContextVar[Lease | None] = ContextVar("current_lease", default=None)


@contextlib.asynccontextmanager
async def lend_slot() -> AsyncIterator[None]:
    """While the block waits on something outside the process, the request's slot serves another; outside a
    request (a job, a test), nothing to lend."""
    lease = current_lease.get()
    if lease is None:
        yield
        return
    async with lease.lent():
        yield

"""Concurrency slots handed out newest-first.

Under overload a queue of waiters in arrival order serves the oldest, which have waited longest and whose clients
are likeliest to have given up: every request then pays the whole wait, and the latency of all of them rises
together. Served newest-first (Facebook's adaptive LIFO, in "Fail at Scale"), the requests that get a slot have
barely waited, and the ones at the back reach their bounded wait and are refused at once (503 + Retry-After).
With no queue the order does not matter: a free slot is taken at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class LifoSlots:
    def __init__(self, limit: int) -> None:
        self._free = limit
        self._limit = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        return self._limit - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_take(self) -> bool:
        if self._free > 0:
            self._free -= 1
            return True
        return False

    async def take(self, max_wait: float) -> bool:
        """A slot within `max_wait` seconds (True), or none (False); the newest waiter is served first."""
        if self.try_take():
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(max_wait):
                await waiter
        except TimeoutError:
            return self._gave_up(waiter)
        except asyncio.CancelledError:
            self._gave_up(waiter, keep=False)
            raise
        return True

    def give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop()  # the newest
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _gave_up(self, waiter: asyncio.Future[None], *, keep: bool = True) -> bool:
        """The wait ended without a slot, unless one was handed over just as it ended: kept, or passed on."""
        if waiter.done() and not waiter.cancelled():
            if keep:
                return True
            self.give_back()
            return False
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        return False

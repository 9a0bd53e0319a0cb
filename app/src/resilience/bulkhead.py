"""At most `limit` calls in flight; a caller waits at most `max_wait` seconds for a place, then fails fast.

A place is taken without awaiting when one is free (`try_enter`), which is every call while the provider keeps up;
only a full bulkhead queues its callers, first come first served, and a leaving call hands its place straight to
the first of them.
"""

from __future__ import annotations

import asyncio
from collections import deque


class BulkheadFullError(Exception):
    """Every place was taken for the whole of `max_wait`."""


class Bulkhead:
    def __init__(self, limit: int, max_wait: float) -> None:
        self.limit = limit
        self.in_flight = 0
        self._max_wait = max_wait
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_enter(self) -> bool:
        """Take a free place now, if there is one and nobody is queued for it."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def enter(self) -> None:
        """Take a place, waiting at most `max_wait`, or raise BulkheadFullError; `leave()` gives it back."""
        if self.try_enter():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._max_wait):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # a place was handed over just as the wait ended: pass it on
            elif waiter in self._waiters:  # not yet skipped by a `leave()` as cancelled
                self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise BulkheadFullError from None
            raise

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place passes on: `in_flight` is unchanged
                return
        self.in_flight -= 1

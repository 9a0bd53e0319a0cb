"""At most `limit` calls in flight; a caller waits at most `max_wait` seconds for a place, then fails fast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BulkheadFullError(Exception):
    """Every place was taken for the whole of `max_wait`."""


class Bulkhead:
    def __init__(self, limit: int, max_wait: float) -> None:
        self.limit = limit
        self._max_wait = max_wait
        self._places = asyncio.Semaphore(limit)

    @property
    def in_flight(self) -> int:
        return self.limit - self._places._value

    async def enter(self) -> None:
        """Take a place (waiting at most `max_wait`) or raise BulkheadFullError; `leave()` gives it back."""
        if self._places.locked():
            try:
                async with asyncio.timeout(self._max_wait):
                    await self._places.acquire()
            except TimeoutError:
                raise BulkheadFullError from None
        else:
            await self._places.acquire()

    def leave(self) -> None:
        self._places.release()

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        await self.enter()
        try:
            yield
        finally:
            self.leave()

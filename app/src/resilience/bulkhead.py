"""At most `limit` calls in flight; a caller waits at most `max_wait` seconds for a place, then fails fast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BulkheadFullError(Exception):
    pass


class Bulkhead:
    def __init__(self, limit: int, max_wait: float) -> None:
        self.limit = limit
        self._max_wait = max_wait
        self._places = asyncio.Semaphore(limit)

    @property
    def in_flight(self) -> int:
        return self.limit - self._places._value

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        if self._places.locked():
            try:
                async with asyncio.timeout(self._max_wait):
                    await self._places.acquire()
            except TimeoutError:
                raise BulkheadFullError from None
        else:
            await self._places.acquire()
        try:
            yield
        finally:
            self._places.release()

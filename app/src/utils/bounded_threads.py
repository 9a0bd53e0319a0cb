"""Blocking work (Argon2 hashing) off the event loop, bounded: at most `threads` run at once and at most `waiting`
more wait for a thread; past that, the caller is refused at once rather than queued without end.

A place is held until the work really ends. A caller that stops waiting (its client left, its task was
cancelled) does not free it while its thread still runs: `asyncio.to_thread` behind a semaphore does, and then
more threads run than the bound says (each Argon2 hash holds 19 MiB). The pool is the process's own, sized to the
bound: the default executor sizes itself from the host's CPUs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ThreadsBusyError(Exception):
    """Every thread is busy and the queue is full: try again shortly."""


class BoundedThreads:
    def __init__(self, threads: int, waiting: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._capacity = threads + waiting
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Work running or waiting for a thread (including work whose caller has stopped waiting)."""
        return self._admitted

    async def run(self, function: Callable[..., T], *arguments: object) -> T:
        if self._admitted >= self._capacity:
            raise ThreadsBusyError
        loop = asyncio.get_running_loop()
        self._admitted += 1
        work = self._executor.submit(function, *arguments)
        work.add_done_callback(lambda _: _call_in_loop(loop, self._release))
        return await asyncio.wrap_future(work)  # cancelling this cancels `work` only if it has not started

    def _release(self) -> None:
        self._admitted -= 1

    def close(self) -> None:
        """Let the running work finish; drop what waits."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _call_in_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop has closed: nobody is left to count
        return


__all__ = ["BoundedThreads", "ThreadsBusyError"]

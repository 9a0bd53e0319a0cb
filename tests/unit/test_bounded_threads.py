"""Blocking work on a bounded pool: the bound holds even when callers give up, and a full pool refuses at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from app.src.utils.bounded_threads import BoundedThreads, ThreadsBusyError


class Work:
    """A blocking job that runs until released, recording how many jobs ran at the same time."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0

    def __call__(self, label: str) -> str:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.release()
        self.release.wait(10)
        with self._lock:
            self.running -= 1
        return label


@pytest.fixture
def pool() -> Iterator[BoundedThreads]:
    threads = BoundedThreads(threads=1, waiting=1, name="test-work")
    yield threads
    threads.close()


async def started(work: Work) -> None:
    assert await asyncio.to_thread(work.started.acquire, True, 5)


async def test_a_caller_that_stops_waiting_keeps_its_place_until_its_work_ends(pool: BoundedThreads) -> None:
    work = Work()
    abandoned = asyncio.create_task(pool.run(work, "first"))
    await started(work)
    abandoned.cancel()  # its client left: the thread runs on
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert pool.admitted == 1
    second = asyncio.create_task(pool.run(work, "second"))
    await asyncio.sleep(0.05)
    assert work.running == 1  # the second waits for the first's thread, however long it runs
    work.release.set()
    assert await second == "second"
    assert work.most_at_once == 1
    await asyncio.sleep(0)
    assert pool.admitted == 0


async def test_past_the_threads_and_the_queue_a_caller_is_refused_at_once(pool: BoundedThreads) -> None:
    work = Work()
    running = asyncio.create_task(pool.run(work, "running"))
    await started(work)
    waiting = asyncio.create_task(pool.run(work, "waiting"))
    await asyncio.sleep(0)
    with pytest.raises(ThreadsBusyError):
        await pool.run(work, "refused")
    work.release.set()
    assert list(await asyncio.gather(running, waiting)) == ["running", "waiting"]


async def test_work_that_never_started_frees_its_place_when_its_caller_gives_up(pool: BoundedThreads) -> None:
    work = Work()
    running = asyncio.create_task(pool.run(work, "running"))
    await started(work)
    queued = asyncio.create_task(pool.run(work, "queued"))
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    await asyncio.sleep(0.01)
    assert pool.admitted == 1  # only the running one
    work.release.set()
    assert await running == "running"

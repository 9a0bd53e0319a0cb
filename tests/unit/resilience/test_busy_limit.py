"""The concurrency limit follows how busy the event loop is: half off per probe that finds its thread
on the CPU more than the target share of the time, down to the floor, one more per probe that finds it less while at
least half the limit was in use, up to the ceiling; a limit that grows hands its room to waiters at once, one that
shrinks lets the requests in flight finish and admits no more until they are under it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from app.src.resilience.busy_limit import BusyLimit, BusyMetrics, BusyRule
from app.src.resilience.lifo_slots import LifoSlots
from tests.support.cpu import compute_for

RULE = BusyRule(floor=4, ceiling=16, target=0.5)
PROBED = BusyRule(floor=4, ceiling=16, target=0.2)  # a low bar: on a shared machine, computing gets part of a core


@pytest.mark.requirement("NFR-4")
def test_a_busy_probe_halves_the_limit() -> None:
    assert RULE.next_limit(16, busy=0.6, peak=16) == 8
    assert RULE.next_limit(15, busy=0.6, peak=1) == 7
    assert BusyRule(floor=1, ceiling=100, target=0.5).next_limit(3, busy=1.0, peak=3) == 1


def test_a_busy_probe_never_takes_the_limit_under_its_floor() -> None:
    assert RULE.next_limit(5, busy=1.0, peak=5) == 4
    assert RULE.next_limit(4, busy=1.0, peak=4) == 4


def test_a_probe_with_time_to_spare_adds_one_up_to_the_ceiling() -> None:
    assert RULE.next_limit(4, busy=0.0, peak=4) == 5
    assert RULE.next_limit(15, busy=0.5, peak=15) == 16  # the target itself is not over it
    assert RULE.next_limit(16, busy=0.0, peak=16) == 16


@pytest.mark.requirement("NFR-4")
def test_a_probe_with_time_to_spare_grows_the_limit_only_when_half_of_it_was_in_use() -> None:
    assert RULE.next_limit(10, busy=0.0, peak=5) == 11
    assert RULE.next_limit(10, busy=0.0, peak=4) == 10
    assert RULE.next_limit(9, busy=0.0, peak=5) == 10  # 5 of 9 is over half
    assert RULE.next_limit(16, busy=0.0, peak=0) == 16  # unused room is kept, not taken away


@pytest.mark.parametrize(("floor", "ceiling"), [(0, 4), (5, 4)])
def test_a_floor_under_one_or_over_the_ceiling_is_refused(floor: int, ceiling: int) -> None:
    with pytest.raises(ValueError, match="floor"):
        BusyRule(floor=floor, ceiling=ceiling, target=0.005)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.requirement("NFR-4")
async def test_a_grown_limit_serves_waiters_at_once() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    waiters = [asyncio.create_task(slots.take(5)) for _ in range(3)]
    await settle()
    slots.set_limit(3)
    await settle()
    assert [waiter.done() for waiter in waiters] == [False, True, True]  # newest first: two places added
    assert slots.in_use == 3
    assert slots.waiting == 1
    slots.set_limit(4)
    assert await waiters[0]


@pytest.mark.requirement("NFR-4")
async def test_a_shrunk_limit_admits_no_one_until_the_requests_in_flight_are_under_it() -> None:
    slots = LifoSlots(4)
    assert all(slots.try_take() for _ in range(4))
    slots.set_limit(2)
    assert slots.in_use == 4
    waiter = asyncio.create_task(slots.take(5))
    await settle()
    slots.give_back()
    slots.give_back()
    await settle()
    assert not waiter.done()
    assert slots.in_use == 2
    slots.give_back()
    assert await waiter
    assert slots.in_use == 2
    assert not slots.try_take()


async def test_a_shrunk_then_grown_limit_loses_no_slot() -> None:
    slots = LifoSlots(8)
    assert all(slots.try_take() for _ in range(8))
    slots.set_limit(3)
    for _ in range(8):
        slots.give_back()
    slots.set_limit(8)
    assert slots.in_use == 0
    assert [slots.try_take() for _ in range(9)] == [True] * 8 + [False]


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the limit never got there"
        await asyncio.sleep(0.005)


@pytest.mark.requirement("NFR-4")
async def test_the_peak_is_the_most_slots_in_use_at_once_since_it_was_last_read() -> None:
    slots = LifoSlots(2)
    assert slots.take_peak() == 0
    assert slots.try_take()
    assert slots.try_take()
    slots.give_back()
    assert slots.take_peak() == 2
    assert slots.take_peak() == 1  # what is in use now
    assert slots.try_take()
    waiter = asyncio.create_task(slots.take(5))
    await settle()
    slots.set_limit(3)  # the waiter takes the new room
    assert await waiter
    slots.give_back()
    assert slots.take_peak() == 3


@pytest.mark.requirement("NFR-4")
async def test_the_limit_shrinks_to_its_floor_while_the_loop_computes_and_grows_back_when_it_waits() -> None:
    slots, registry = LifoSlots(16), CollectorRegistry()
    limit = BusyLimit(slots, PROBED, interval=0.005, window=0.05, metrics=BusyMetrics(registry))
    stalled = asyncio.Event()

    async def hog_the_loop() -> None:
        while not stalled.is_set():
            compute_for(0.02)
            await asyncio.sleep(0)

    async with limit.following():
        hog = asyncio.create_task(hog_the_loop())
        await wait_until(lambda: slots.limit == 4)
        assert (registry.get_sample_value("event_loop_busy_ratio") or 0) > PROBED.target
        stalled.set()
        await hog
        await asyncio.sleep(0.05)
        assert slots.limit == 4  # idle and unused: no reason to grow
        assert all(slots.try_take() for _ in range(4))
        await wait_until(lambda: slots.limit >= 9)
        await asyncio.sleep(0.05)
        assert slots.limit == 9  # four in use: grown while that was half of it or more, no further
        assert all(slots.try_take() for _ in range(4))
        await wait_until(lambda: slots.limit == 16)


@pytest.mark.requirement("NFR-4")
async def test_a_loop_busy_for_a_whole_window_is_overloaded_and_one_short_burst_is_not() -> None:
    slots = LifoSlots(16)
    limit = BusyLimit(slots, PROBED, interval=0.005, window=0.1, metrics=BusyMetrics(CollectorRegistry()))
    async with limit.following():
        await asyncio.sleep(0.15)
        compute_for(0.012)  # past the target in a probe or two, a small share of the window
        for _ in range(100):  # the probe that read the burst runs first
            await asyncio.sleep(0.002)
            assert not slots.overloaded
        deadline = time.monotonic() + 10
        while not slots.overloaded:
            assert time.monotonic() < deadline, "a busy loop never said so"
            compute_for(0.02)
            await asyncio.sleep(0)
        assert slots.standing(60)  # with every slot free: said by the loop alone
        while slots.overloaded:
            assert time.monotonic() < deadline, "an idle loop still said so"
            await asyncio.sleep(0.01)


async def test_the_limit_stops_following_once_the_block_ends() -> None:
    slots = LifoSlots(16)
    limit = BusyLimit(slots, PROBED, interval=0.005, window=0.05, metrics=BusyMetrics(CollectorRegistry()))
    async with limit.following():
        deadline = time.monotonic() + 10
        while slots.limit == 16:
            assert time.monotonic() < deadline, "the limit never came down"
            compute_for(0.02)
            await asyncio.sleep(0)
    shrunk = slots.limit
    await asyncio.sleep(0.05)
    assert slots.limit == shrunk
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "busy-limit"]


def test_the_loop_metric_is_exported_under_the_name_and_help_operators_read() -> None:
    registry = CollectorRegistry()
    BusyMetrics(registry)
    assert {(family.name, family.type, family.documentation) for family in registry.collect()} == {
        ("event_loop_busy_ratio", "gauge", "The event loop thread's CPU time over wall time, at the last probe"),
    }

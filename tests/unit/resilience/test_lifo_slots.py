"""Slots under a limit, handed to the newest waiter first; a waiter that runs out of time gets none and takes
none from the others; a slot is never lost, whatever is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from app.src.resilience.lifo_slots import LifoSlots


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slots_are_taken_at_once_up_to_the_limit() -> None:
    slots = LifoSlots(2)
    assert [slots.try_take(), slots.try_take(), slots.try_take()] == [True, True, False]
    assert slots.in_use == 2


async def test_a_freed_slot_goes_to_the_newest_waiter() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    served: list[str] = []

    async def wait(name: str) -> None:
        if await slots.take(5):
            served.append(name)

    tasks = []
    for name in ("oldest", "middle", "newest"):
        tasks.append(asyncio.create_task(wait(name)))
        await settle()
    slots.give_back()
    await settle()
    assert served == ["newest"]
    slots.give_back()
    await settle()
    assert served == ["newest", "middle"]
    slots.give_back()
    await asyncio.gather(*tasks)
    assert served == ["newest", "middle", "oldest"]


async def test_a_waiter_out_of_time_gets_no_slot_and_the_slot_is_not_lost() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    assert await slots.take(0.01) is False
    assert slots.waiting == 0
    slots.give_back()
    assert slots.in_use == 0
    assert slots.try_take()


async def test_a_cancelled_waiter_leaves_the_queue_and_a_slot_handed_to_it_is_passed_on() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    patient = asyncio.create_task(slots.take(5))
    await settle()
    cancelled = asyncio.create_task(slots.take(5))
    await settle()
    slots.give_back()  # handed to the newest, which is cancelled before it runs
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await patient is True  # the slot went on to the next waiter
    assert slots.in_use == 1

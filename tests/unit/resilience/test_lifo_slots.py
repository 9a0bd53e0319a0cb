"""Slots under a limit, handed to the newest waiter first (after the short standing wait once a queue stands); lent
while a request waits elsewhere and taken back ahead of new waiters; a waiter that runs out of time gets none and takes
none from the others; a slot is never lost, whatever is cancelled."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.src.resilience.lifo_slots import Lease, LifoSlots, current_lease, lend_slot


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def lender_waiting_to_take_back() -> tuple[LifoSlots, Lease, asyncio.Task[None]]:
    """One slot, lent by a request whose provider has answered, and held meanwhile by another request."""
    slots = LifoSlots(1)
    assert slots.try_take()
    lease = Lease(slots)
    answered = asyncio.Event()

    async def lender() -> None:
        async with lease.lent():
            await answered.wait()

    task = asyncio.create_task(lender())
    await settle()
    assert slots.try_take()  # another request holds the lent slot
    answered.set()
    await settle()
    return slots, lease, task


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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_once_no_slot_was_free_for_max_wait_a_new_waiter_waits_only_the_standing_wait() -> None:
    clock = Clock()
    slots = LifoSlots(1, standing_wait=0.01, clock=clock)
    assert slots.try_take()  # a slot was free at 100.0
    clock.now += 0.09
    assert slots.wait_for(0.1) == 0.1  # a queue that may still drain: the whole wait
    clock.now += 0.02
    assert slots.wait_for(0.1) == 0.01  # none free for over 0.1 s: the queue stands
    clock.now += 5
    began = asyncio.get_running_loop().time()
    assert await slots.take(5) is False  # no slot free for over 5 s either
    assert asyncio.get_running_loop().time() - began < 1  # the standing wait, not the 5 s asked
    slots.give_back()  # free again, with nobody waiting
    assert slots.wait_for(0.1) == 0.1
    assert slots.try_take()
    clock.now += 0.2
    assert slots.wait_for(0.05) == 0.01
    assert LifoSlots(1, clock=clock).wait_for(0.1) == 0.1  # without a standing wait, never shortened


@pytest.mark.requirement("NFR-4")
async def test_while_the_loop_is_overloaded_a_new_waiter_waits_only_the_standing_wait() -> None:
    clock = Clock()
    slots = LifoSlots(1, standing_wait=0.01, clock=clock)
    assert slots.try_take()
    assert slots.wait_for(0.1) == 0.1  # a slot was free just now: a burst
    slots.overloaded = True
    assert slots.wait_for(0.1) == 0.01  # at once: nothing will drain a queue faster than the loop runs now
    slots.overloaded = False
    assert slots.wait_for(0.1) == 0.1


async def test_the_standing_wait_never_lengthens_a_shorter_max_wait() -> None:
    clock = Clock()
    slots = LifoSlots(1, standing_wait=0.5, clock=clock)
    assert slots.try_take()
    clock.now += 1
    assert slots.wait_for(0.1) == 0.1


async def test_a_lent_slot_serves_another_and_comes_back_ahead_of_new_waiters() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    lease = Lease(slots)
    token = current_lease.set(lease)
    order: list[str] = []
    provider_answered = asyncio.Event()

    async def waiting_on_a_provider() -> None:
        async with lend_slot():
            await provider_answered.wait()
        order.append("lender back")

    lender = asyncio.create_task(waiting_on_a_provider())
    await settle()
    assert slots.in_use == 0
    assert slots.try_take()  # the lent slot serves another request

    async def new_waiter() -> None:
        if await slots.take(5):
            order.append("new waiter")

    waiter = asyncio.create_task(new_waiter())
    await settle()
    provider_answered.set()
    await settle()
    assert order == []  # the lender waits for a slot too: none is free
    slots.give_back()  # the other request ends: its slot goes to the lender, not to the newer waiter
    await settle()
    assert order == ["lender back"]
    assert lease.held
    lease.end()
    await waiter
    assert order == ["lender back", "new waiter"]
    await lender
    current_lease.reset(token)
    slots.give_back()
    assert slots.in_use == 0


async def test_outside_a_request_there_is_nothing_to_lend() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    async with lend_slot():
        assert not slots.try_take()  # nothing was given back
    assert slots.in_use == 1


async def test_a_request_that_ended_while_its_slot_was_lent_takes_none_back() -> None:
    slots = LifoSlots(2)
    assert slots.try_take()
    lease = Lease(slots)
    async with lease.lent():
        assert slots.in_use == 0
        lease.end()  # the request ended; a task it started still waits on the provider
    assert slots.in_use == 0
    assert not lease.held
    lease.end()  # ending twice gives back nothing more
    assert slots.in_use == 0


async def test_a_lender_cancelled_while_taking_its_slot_back_loses_no_slot_and_frees_none_twice() -> None:
    slots, lease, task = await lender_waiting_to_take_back()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lease.end()  # the request's own end: it holds nothing, so gives nothing
    assert slots.in_use == 1
    slots.give_back()
    assert slots.in_use == 0
    assert slots.try_take()


async def test_a_slot_handed_over_as_the_wait_runs_out_is_kept() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    asyncio.get_running_loop().call_later(0.01, slots.give_back)
    waiter = asyncio.create_task(slots.take(0.02))
    await asyncio.sleep(0)  # it waits, its time running out 10 ms after the hand-over
    time.sleep(0.05)  # noqa: ASYNC251 - the loop is held on purpose: the hand-over and the timeout come due together
    assert await waiter is True  # served: the slot it was handed is not dropped, nor given back as if refused
    assert slots.in_use == 1
    assert slots.waiting == 0


async def test_a_waiter_cancelled_before_any_hand_over_leaves_nothing_behind() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    waiter = asyncio.create_task(slots.take(5))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting == 0
    slots.give_back()
    assert slots.in_use == 0


async def test_a_waiter_cancelled_then_skipped_by_a_give_back_still_ends_cancelled() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    waiter = asyncio.create_task(slots.take(5))
    await settle()
    waiter.cancel()  # its future is cancelled now; the task has not run since
    slots.give_back()  # skips the cancelled waiter: the slot is free
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (slots.in_use, slots.waiting) == (0, 0)


async def test_a_lender_cancelled_as_its_slot_comes_back_passes_it_on() -> None:
    slots, lease, task = await lender_waiting_to_take_back()
    slots.give_back()  # handed to the lender...
    task.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await task
    lease.end()
    assert slots.in_use == 0  # passed on (no one else wanted it): not lost with the lender
    assert slots.try_take()


async def test_ending_a_held_lease_twice_gives_its_slot_back_once() -> None:
    slots = LifoSlots(2)
    assert slots.try_take()
    assert slots.try_take()
    lease = Lease(slots)
    lease.end()
    lease.end()
    assert slots.in_use == 1
    async with lease.lent():  # an ended lease has nothing to lend
        assert slots.in_use == 1
    assert slots.in_use == 1


async def test_a_queue_stands_only_once_no_slot_was_free_for_longer_than_max_wait() -> None:
    clock = Clock()
    slots = LifoSlots(1, standing_wait=0.01, clock=clock)
    assert slots.try_take()
    clock.now += 0.5
    assert slots.wait_for(0.5) == 0.5  # exactly the wait: not yet standing
    clock.now += 0.25
    assert slots.wait_for(0.5) == 0.01


@pytest.mark.requirement("NFR-4")
async def test_a_request_cancelled_while_its_slot_is_lent_ends_at_once_without_taking_a_slot_back() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    lease = Lease(slots)
    lent = asyncio.Event()

    async def lender() -> None:
        async with lease.lent():
            lent.set()
            await asyncio.Event().wait()  # a provider that never answers

    task = asyncio.create_task(lender())
    await lent.wait()
    assert slots.try_take()  # another request holds the lent slot, and keeps it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # one cancellation ends it: it does not wait for the busy slot
    lease.end()
    assert (slots.in_use, slots.waiting) == (1, 0)


async def test_a_provider_error_while_lent_takes_the_slot_back_to_answer_it() -> None:
    slots = LifoSlots(1)
    assert slots.try_take()
    lease = Lease(slots)

    async def lender() -> None:
        async with lease.lent():
            raise ConnectionError("the provider reset the connection")

    with pytest.raises(ConnectionError):
        await lender()
    assert (lease.held, slots.in_use) == (True, 1)  # the error is answered under the request's own slot
    lease.end()
    assert slots.in_use == 0

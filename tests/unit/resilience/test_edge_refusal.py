"""The edge refuses a request only when the app has no slot free and its queue holds INBOUND_QUEUE waiters: with a
queue of 0, a request that finds a free slot is still admitted."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter

from app.runtime.edge import EdgeShedding
from app.src.resilience.inbound import Inbound
from app.src.resilience.lifo_slots import LifoSlots


def shedding(slots: LifoSlots, queue: int) -> EdgeShedding:
    shed = Counter("shed", "Refused", registry=CollectorRegistry())
    return EdgeShedding(Inbound(slots, shed, lambda path: path == "/api/common/health"), queue, retry_after=1)


@pytest.mark.requirement("NFR-4")
def test_with_no_queue_the_edge_refuses_only_while_every_slot_is_taken() -> None:
    slots = LifoSlots(1)
    edge = shedding(slots, queue=0)
    assert not edge.refuses(b"/api/auth/me")
    assert slots.try_take()
    assert edge.refuses(b"/api/auth/me?x=1")
    assert not edge.refuses(b"/api/common/health?x=1")  # exempt, whatever its query
    slots.give_back()
    assert not edge.refuses(b"/api/auth/me")


async def test_with_a_queue_the_edge_refuses_once_that_many_wait() -> None:
    slots = LifoSlots(1)
    edge = shedding(slots, queue=1)
    assert slots.try_take()
    assert not edge.refuses(b"/api/auth/me")  # full, but the queue has room
    waiter = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    assert edge.refuses(b"/api/auth/me")
    slots.give_back()
    assert await waiter

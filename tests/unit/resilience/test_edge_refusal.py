"""Admission at the edge: a request without a body that finds a slot free takes it there; one that finds none is
refused while the app's queue holds INBOUND_QUEUE waiters or would stand (the event loop had no time to spare within
INBOUND_MAX_WAIT, or no slot was free for as long), and waits in the app while a queue there drains."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter

from app.runtime.edge import EdgeShedding
from app.src.resilience.inbound import Inbound
from app.src.resilience.lifo_slots import LifoSlots

MAX_WAIT = 0.1
NO_BODY: list[tuple[bytes, bytes]] = [(b"host", b"x"), (b"authorization", b"Bearer t")]


def shedding(slots: LifoSlots, queue: int) -> EdgeShedding:
    shed = Counter("shed", "Refused", registry=CollectorRegistry())
    exempt = Inbound(slots, shed, lambda path: path == "/api/common/health", MAX_WAIT)
    return EdgeShedding(exempt, queue, retry_after=1)


@pytest.mark.requirement("NFR-4")
def test_a_request_without_a_body_takes_a_free_slot_at_the_edge() -> None:
    slots = LifoSlots(2)
    edge = shedding(slots, queue=4)
    lease = edge.reserve(b"/api/auth/me?x=1", NO_BODY)
    assert lease is not None
    assert lease.held
    assert slots.in_use == 1
    assert edge.reserve(b"/api/auth/me", NO_BODY) is not None
    assert edge.reserve(b"/api/auth/me", NO_BODY) is None  # none left
    assert slots.in_use == 2
    lease.end()
    assert slots.in_use == 1


@pytest.mark.requirement("NFR-4")
@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (b"/api/billing/payments", [*NO_BODY, (b"content-length", b"12")]),
        (b"/api/billing/payments", [*NO_BODY, (b"transfer-encoding", b"chunked")]),
        (b"/api/common/health?probe=1", NO_BODY),
    ],
    ids=["content-length", "chunked", "exempt"],
)
def test_a_request_with_a_body_or_on_an_exempt_route_takes_no_slot_at_the_edge(
    url: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    slots = LifoSlots(1)
    assert shedding(slots, queue=4).reserve(url, headers) is None
    assert slots.in_use == 0  # a body is read before its request takes a slot, in the app: a slow upload holds none


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


async def test_with_a_queue_that_drains_the_edge_refuses_once_that_many_wait() -> None:
    slots = LifoSlots(1)
    edge = shedding(slots, queue=1)
    assert slots.try_take()
    assert not edge.refuses(b"/api/auth/me")  # full, but the queue has room
    waiter = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    assert edge.refuses(b"/api/auth/me")
    slots.give_back()
    assert await waiter


@pytest.mark.requirement("NFR-4")
def test_while_the_loop_is_overloaded_or_no_slot_was_free_for_a_max_wait_the_edge_refuses_whenever_none_is() -> None:
    now = [100.0]
    slots = LifoSlots(1, clock=lambda: now[0])
    edge = shedding(slots, queue=4)
    assert slots.try_take()
    assert not edge.refuses(b"/api/auth/me")  # a burst: it may wait in the app
    slots.overloaded = True
    assert edge.refuses(b"/api/auth/me")  # with nobody waiting yet: a queue now would only stand
    assert not edge.refuses(b"/api/common/health")
    slots.overloaded = False
    assert not edge.refuses(b"/api/auth/me")
    now[0] += MAX_WAIT + 0.001
    assert edge.refuses(b"/api/auth/me")  # no slot free for a whole max wait: standing
    slots.give_back()
    assert not edge.refuses(b"/api/auth/me")  # a slot free: admitted

"""LoadShedder at the ASGI level: a request holds its slot until its answer is sent, not until the app's
teardown ends (a closed-loop client's next request would find the slot still taken)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app.src.resilience.inbound import EDGE_SLOT, InboundMetrics, LoadShedder
from app.src.resilience.lifo_slots import Lease, LifoSlots


@pytest.mark.requirement("NFR-4")
async def test_the_slot_is_free_once_the_answer_is_sent_while_the_teardown_still_runs() -> None:
    slots = LifoSlots(1)
    teardown, answered = asyncio.Event(), asyncio.Event()
    in_use: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        in_use.append(slots.in_use)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        in_use.append(slots.in_use)
        await send({"type": "http.response.body", "body": b"b"})  # more_body left out: False, as ASGI says
        in_use.append(slots.in_use)
        answered.set()
        await teardown.wait()

    metrics = InboundMetrics(CollectorRegistry())
    shedder = LoadShedder(app, slots=slots, max_wait=0, retry_after=1, exempt=lambda path: False, metrics=metrics)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    first = asyncio.create_task(shedder({"type": "http", "path": "/a", "headers": []}, receive, send))  # type: ignore[arg-type]
    await answered.wait()
    assert in_use == [1, 1, 0]  # held while the answer is being sent, free after its last byte
    assert slots.try_take()  # the next request gets the slot while the first's teardown runs
    slots.give_back()
    teardown.set()
    await first
    assert slots.in_use == 0  # freed once, not twice
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body",
                                                     "http.response.body"]  # fmt: skip


@pytest.mark.requirement("NFR-4")
async def test_a_slot_the_edge_took_is_the_requests_own_and_one_the_edge_gave_back_is_not_used() -> None:
    slots = LifoSlots(2)
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(slots.in_use)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a"})

    metrics = InboundMetrics(CollectorRegistry())
    shedder = LoadShedder(app, slots=slots, max_wait=0, retry_after=1, exempt=lambda path: False, metrics=metrics)

    async def send(message: dict[str, Any]) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert slots.try_take()
    taken = Lease(slots)  # what the edge took for the request
    scope: Any = {"type": "http", "path": "/a", "headers": [], EDGE_SLOT: taken}
    await shedder(scope, receive, send)  # type: ignore[arg-type]
    assert seen == [1]  # its own slot: no second one taken
    assert taken.claimed
    assert taken.ended
    assert slots.in_use == 0  # and given back once answered

    assert slots.try_take()
    gone = Lease(slots)
    gone.end()  # the connection was lost before the request reached the app: the edge gave it back
    scope = {"type": "http", "path": "/a", "headers": [], EDGE_SLOT: gone}
    await shedder(scope, receive, send)  # type: ignore[arg-type]
    assert seen == [1, 1]  # a slot of its own, taken here
    assert not gone.claimed
    assert slots.in_use == 0

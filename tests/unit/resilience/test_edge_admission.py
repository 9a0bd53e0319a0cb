"""The edge's protocol hands the slot it took to the app with the request, and gives it back itself when the app
never got it (the connection was lost first): driven through uvicorn's protocol with a transport in memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry, Counter
from uvicorn.server import ServerState

from app.runtime.edge import EdgeLimits, EdgeProtocol, EdgeShedding, edge_protocol
from app.src.resilience.inbound import EDGE_SLOT, Inbound, InboundMetrics, LoadShedder
from app.src.resilience.lifo_slots import Lease, LifoSlots

REQUEST = b"GET /api/auth/me HTTP/1.1\r\nHost: x\r\n\r\n"


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


def connected(slots: LifoSlots, app: Any) -> tuple[EdgeProtocol, MemoryTransport]:
    shed = Counter("shed", "Refused", registry=CollectorRegistry())
    shedding = EdgeShedding(Inbound(slots, shed, lambda path: False, max_wait=0.1), queue=0, retry_after=1)
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    config.load()
    protocol = edge_protocol(EdgeLimits(), shedding)(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = MemoryTransport()
    protocol.connection_made(transport)
    return protocol, transport


def shedder(slots: LifoSlots, seen: list[tuple[object, int]]) -> LoadShedder:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close"})
            return
        seen.append((scope.get(EDGE_SLOT), slots.in_use))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    metrics = InboundMetrics(CollectorRegistry())
    return LoadShedder(app, slots=slots, max_wait=0.1, retry_after=1, exempt=lambda path: False, metrics=metrics)


class Served:
    """A connection to the edge, in front of the app's shedder; `seen`: each request's slot from the edge, and the
    slots in use, as the app saw them."""

    def __init__(self, slots: LifoSlots) -> None:
        self.slots = slots
        self.seen: list[tuple[object, int]] = []
        self.protocol, self.transport = connected(slots, shedder(slots, self.seen))


async def settled(slots: LifoSlots, seen: list[tuple[object, int]], count: int) -> None:
    async with asyncio.timeout(5):
        while len(seen) < count or slots.in_use:  # noqa: ASYNC110 - the request runs in uvicorn's task
            await asyncio.sleep(0.001)


@pytest.mark.requirement("NFR-4")
async def test_the_app_serves_a_request_in_the_slot_the_edge_took_for_it_and_it_is_given_back_once() -> None:
    served = Served(slots := LifoSlots(2))
    protocol, transport, seen = served.protocol, served.transport, served.seen
    protocol.data_received(REQUEST)
    assert slots.in_use == 1  # taken as the head was read, before the app ran
    await settled(slots, seen, 1)
    lease, in_use = seen[0]
    assert isinstance(lease, Lease)
    assert lease.claimed
    assert in_use == 1  # the app took no second slot
    assert transport.written.startswith(b"HTTP/1.1 200")
    protocol.data_received(REQUEST)  # the next request on the connection takes one again
    await settled(slots, seen, 2)
    assert slots.in_use == 0


@pytest.mark.requirement("NFR-4")
async def test_a_slot_taken_for_a_request_whose_connection_is_lost_before_the_app_runs_is_given_back() -> None:
    served = Served(slots := LifoSlots(1))
    protocol, seen = served.protocol, served.seen
    protocol.data_received(REQUEST)
    assert slots.in_use == 1
    protocol.connection_lost(None)  # before the app's task ran
    assert slots.in_use == 0
    assert slots.try_take()  # another request has it
    slots.give_back()
    await settled(slots, seen, 1)
    assert seen[0][1] == 1  # the lost request, if the app still runs it, takes a slot of its own
    assert slots.in_use == 0


@pytest.mark.requirement("NFR-4")
async def test_a_slot_taken_for_a_request_answered_before_the_shedder_is_given_back_with_the_answer() -> None:
    slots = LifoSlots(1)
    answered: list[int] = []

    async def rate_limited(scope: Any, receive: Any, send: Any) -> None:  # middleware outside the shedder, answering
        await send({"type": "http.response.start", "status": 429, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        answered.append(slots.in_use)

    protocol, transport = connected(slots, rate_limited)
    protocol.data_received(REQUEST)
    assert slots.in_use == 1
    async with asyncio.timeout(5):
        while not answered:  # noqa: ASYNC110 - the request runs in uvicorn's task
            await asyncio.sleep(0.001)
    assert answered == [0]  # free once the answer was sent, though no shedder claimed it
    assert transport.written.startswith(b"HTTP/1.1 429")
    assert not transport.closed


@pytest.mark.requirement("NFR-4")
async def test_a_websocket_upgrade_takes_no_slot_at_the_edge() -> None:
    served = Served(slots := LifoSlots(1))
    protocol, transport, seen = served.protocol, served.transport, served.seen
    head = [b"GET /api/auth/me HTTP/1.1", b"Host: x", b"Upgrade: websocket", b"Connection: Upgrade",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"]  # fmt: skip
    protocol.data_received(b"\r\n".join(head) + b"\r\n\r\n")
    assert transport.protocol is not protocol  # handed to uvicorn's websocket protocol, which the edge never hears of
    assert slots.in_use == 0  # so a slot taken here would never be given back
    await asyncio.sleep(0.01)
    assert not seen  # and the app never ran it as a request


@pytest.mark.requirement("NFR-4")
async def test_of_requests_read_in_one_turn_of_the_loop_only_those_with_a_slot_are_let_through() -> None:
    slots = LifoSlots(1)
    connections = [Served(slots) for _ in range(3)]
    for each in connections:  # read one after another, before any of the app's tasks runs
        each.protocol.data_received(REQUEST)
    assert slots.in_use == 1
    first, *others = connections
    for each in others:  # no slot left and no queue: refused at once, not sent to wait for the first one's slot
        assert each.transport.written.startswith(b"HTTP/1.1 503")
    await settled(slots, first.seen, 1)
    assert [in_use for _, in_use in first.seen] == [1]
    assert not [seen for each in others for seen in each.seen]  # the app never saw them

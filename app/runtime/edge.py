"""The HTTP edge: uvicorn's httptools protocol with the bounds it lacks when the service faces clients itself.

httptools buffers a request line and headers of any size and count, and a connection that sends part of a
request head is kept open forever: a 1 MiB header is answered 200 and slowloris holds file descriptors at no cost.
Here a head is refused past `max_url_bytes` (414), `max_header_bytes` or `max_headers` (431); a connection whose
head does not arrive within `head_timeout` seconds (from its opening, or from the end of its last answer) gets 408
and is closed; and a peer address holds at most `connections_per_peer` connections (a trusted proxy: no cap).

It also admits and refuses requests before the app sees them (EdgeShedding): a request without a body that finds
one of the app's concurrency slots free takes it here; one that finds none, while the app's queue would stand or
holds `queue` waiters already, gets 503 + Retry-After straight from here, without the id, the access line, the
middleware and the wait the app's own shedding would spend on it. What a refusal costs decides how much of the core
is left for serving at twice the capacity (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.src.resilience.inbound import EDGE_SLOT, Inbound
from app.src.resilience.lifo_slots import Lease
from app.src.utils.problems import PROBLEM_CONTENT_TYPE, problem_type

BODY_HEADERS = frozenset((b"content-length", b"transfer-encoding"))  # names as uvicorn keeps them: lowercase
SWEEP_SECONDS = 0.5  # how often waiting connections are checked: a head timeout ends within this of its time


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    connections_per_peer: int | None = 100
    trusted_proxies: Sequence[str] = ()


class _HeadRefusedError(Exception):
    """Raised in a parser callback to stop parsing a head that is over a bound."""


def _answer(
    status: int,
    reason: str,
    detail: str,
    *,
    type_: str = "about:blank",
    keep_alive: bool = False,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A whole answer written by the edge itself: the app never saw the request (it has no path or id yet)."""
    body = json.dumps({"type": type_, "title": reason, "status": status, "detail": detail}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {PROBLEM_CONTENT_TYPE}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body  # fmt: skip


@dataclass(frozen=True)
class EdgeShedding:
    """Admission at the edge (a route `exempt` is neither given a slot here nor refused).

    A request without a body that finds a slot free takes it here, and the app's shedder claims it. Left to the app,
    every request read in one turn of the loop would see the same free slot, and all but the first would wait for
    one. (A request with a body takes its slot in the app, once its body is in: a slow upload holds no slot.)

    One that finds no slot free waits for one in the app only while a queue there drains: fewer than `queue` wait,
    and the loop has time to spare. Otherwise it is refused at once: under overload the app gets what it has room
    for, and the rest are refused without waiting (a wait that would end in a slot would add to the latency of an
    accepted request; one that would end in a refusal would only delay it)."""

    inbound: Inbound
    queue: int
    retry_after: int

    def reserve(self, url: bytes, headers: Sequence[tuple[bytes, bytes]]) -> Lease | None:
        """A free slot for a request without a body, taken now; None: none is free, or the request is not for one."""
        slots = self.inbound.slots
        if slots.in_use >= slots.limit or any(name in BODY_HEADERS for name, _ in headers) or self._exempt(url):
            return None
        return Lease(slots) if slots.try_take() else None

    def refuses(self, url: bytes) -> bool:
        """No slot is free and a queue would stand or is full (a queue of 0: refused whenever no slot is free)."""
        slots = self.inbound.slots
        if slots.in_use < slots.limit:
            return False
        if slots.waiting < self.queue and not slots.standing(self.inbound.max_wait):
            return False
        return not self._exempt(url)

    def _exempt(self, url: bytes) -> bool:
        return self.inbound.exempt(url.partition(b"?")[0].decode("latin-1"))

    def answer(self, keep_alive: bool) -> bytes:
        """The whole 503 problem answer, written by the protocol itself; counted as shed."""
        self.inbound.shed.inc()
        return self._answers[keep_alive]

    @functools.cached_property
    def _answers(self) -> dict[bool, bytes]:
        detail = "The service is at capacity; retry after the time in Retry-After."
        headers = (("retry-after", str(self.retry_after)), ("x-content-type-options", "nosniff"))
        return {
            keep_alive: _answer(503, "Service Unavailable", detail, type_=problem_type("overloaded"),
                                keep_alive=keep_alive, headers=headers)
            for keep_alive in (True, False)
        }  # fmt: skip


@dataclass
class EdgeState:
    """What one server's connections share: how many each peer holds, and which wait for a request head."""

    limits: EdgeLimits
    shedding: EdgeShedding | None = None
    peers: Counter[str] = field(default_factory=Counter)
    waiting: dict[EdgeProtocol, float] = field(default_factory=dict)  # since when
    _sweep: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self._trusted = [ipaddress.ip_network(network) for network in self.limits.trusted_proxies]

    def admit(self, peer: str | None) -> bool:
        """Count a new connection of `peer`; False when the peer has all it may hold."""
        cap = self.limits.connections_per_peer
        if peer is None or cap is None or self._trusted_proxy(peer):
            return True
        if self.peers[peer] >= cap:
            return False
        self.peers[peer] += 1
        return True

    def release(self, peer: str | None) -> None:
        if peer is not None and peer in self.peers:
            self.peers[peer] -= 1
            if not self.peers[peer]:
                del self.peers[peer]

    def _trusted_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def wait_for_head(self, protocol: EdgeProtocol) -> None:
        self.waiting[protocol] = time.monotonic()
        if self._sweep is None:
            self._sweep = protocol.loop.call_later(SWEEP_SECONDS, self.sweep, protocol.loop)

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every half second while connections wait: refuse those whose head is late (a timer per connection
        would cost a timer per request)."""
        self._sweep = None
        deadline = time.monotonic() - self.limits.head_timeout
        detail = f"The request head did not arrive within {self.limits.head_timeout:g} s."
        for protocol in [protocol for protocol, since in self.waiting.items() if since < deadline]:
            protocol.refuse(408, "Request Timeout", detail)
        if self.waiting:
            self._sweep = loop.call_later(SWEEP_SECONDS, self.sweep, loop)


class EdgeProtocol(HttpToolsProtocol):
    state: EdgeState  # each server's subclass has its own (edge_protocol)
    _peer: str | None = None
    _url_bytes = 0
    _header_bytes = 0
    _header_count = 0
    _refusal: tuple[int, str, str] | None = None
    _shedding_this = False
    _slot: Lease | None = None  # taken here for the request being answered

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = None if self.client is None else self.client[0]
        if not self.state.admit(peer):
            transport.abort()  # no answer: this peer has enough connections open to hear one on
            return
        self._peer = peer
        self.state.wait_for_head(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None and not self._slot.claimed:  # the app never got it: its shedder cannot give it back
            self._slot.end()
        self._slot = None
        self.state.waiting.pop(self, None)
        self.state.release(self._peer)
        self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, but a head over a bound gets its own answer (uvicorn would say 400 and log a warning)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self.refuse(*self._refusal)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = self._header_bytes = self._header_count = 0

    def on_url(self, url: bytes) -> None:
        limits = self.state.limits
        self._url_bytes += len(url)
        if self._url_bytes > limits.max_url_bytes:
            self._refusal = (414, "URI Too Long", f"The request target is over {limits.max_url_bytes} bytes.")
            raise _HeadRefusedError
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.state.limits
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > limits.max_headers or self._header_bytes > limits.max_header_bytes:
            detail = f"At most {limits.max_headers} headers, of {limits.max_header_bytes} bytes in all."
            self._refusal = (431, "Request Header Fields Too Large", detail)
            raise _HeadRefusedError
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.state.waiting.pop(self, None)
        shedding = self.state.shedding
        # Only when no earlier (pipelined) request is still being answered: its answer must go first, and the app's
        # own shedding answers this one.
        idle = self.cycle is None or self.cycle.response_complete
        if shedding is not None and idle:
            # Not for an upgrade: uvicorn hands the connection to its websocket protocol, and this one would never
            # hear of the request again to give the slot back (the app's shedder does not handle websockets either).
            self._slot = None if self.parser.should_upgrade() else shedding.reserve(self.url, self.headers)
            if self._slot is not None:
                cast("dict[str, object]", self.scope)[EDGE_SLOT] = self._slot
            elif shedding.refuses(self.url):
                self._shedding_this = True  # answered when its message ends: no request cycle, no task
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._shedding_this:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._shedding_this:
            super().on_message_complete()
            return
        self._shedding_this = False
        shedding = self.state.shedding
        assert shedding is not None  # noqa: S101 - set only when there is shedding
        keep_alive = self.parser.should_keep_alive()
        self.transport.write(shedding.answer(keep_alive))
        if keep_alive:
            self.on_response_complete()
        else:
            self.transport.close()

    def on_response_complete(self) -> None:
        if self._slot is not None:  # answered, whether or not the app's shedder had the slot (ending it twice is one)
            self._slot.end()
            self._slot = None
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.state.wait_for_head(self)

    def refuse(self, status: int, reason: str, detail: str) -> None:
        self.state.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.write(_answer(status, reason, detail))
            self.transport.close()


def edge_protocol(limits: EdgeLimits, shedding: EdgeShedding | None = None) -> type[EdgeProtocol]:
    """The protocol class for one server: its connections share one EdgeState."""
    return type("EdgeProtocol", (EdgeProtocol,), {"state": EdgeState(limits, shedding)})

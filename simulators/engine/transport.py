"""Connection-level faults need the TCP transport, which ASGI hides: this uvicorn protocol puts it in the scope."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TRANSPORT_KEY = "simulator.transport"
_LINGER_ZERO = struct.pack("ii", 1, 0)


class TransportExposingProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[TRANSPORT_KEY] = self.transport  # type: ignore[literal-required]


def transport_of(scope: Any) -> asyncio.Transport | None:
    transport: asyncio.Transport | None = scope.get(TRANSPORT_KEY)
    return transport


def reset(transport: asyncio.Transport | None) -> None:
    """Abort with SO_LINGER 0, so the peer receives a TCP RST rather than an orderly close."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()


def close(transport: asyncio.Transport | None) -> None:
    if transport is not None and not transport.is_closing():
        transport.close()

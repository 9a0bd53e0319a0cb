"""A request's body is read whole before the request takes a concurrency slot: a client that sends its body slowly
holds nothing but its own connection, where it used to hold one of the service's few slots for up to a minute.

The body must arrive within `deadline` seconds in all (408 and the connection closed after it) and hold at most
`max_bytes` (413, checked against Content-Length before a byte is read). A request without a body passes at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from app.src.resilience.inbound import send_problem

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIFramework,
        ASGIReceiveCallable,
        ASGIReceiveEvent,
        ASGISendCallable,
        HTTPScope,
        Scope,
    )

_CLOSE = {"Connection": "close"}  # what the client sends next is the rest of a body we refused: not a request


class _TooLargeError(Exception):
    pass


class _GoneError(Exception):
    pass


def _announced_length(scope: HTTPScope) -> int | None:
    """The body's length by Content-Length, -1 when chunked (unknown), None when there is no body."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
        if name == b"transfer-encoding":
            return -1
    return None


class BodyBuffer:
    def __init__(self, app: ASGIFramework, *, max_bytes: int, deadline: float) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._deadline = deadline

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        length = _announced_length(scope)
        if not length:  # no body, or an empty one
            await self._app(scope, receive, send)
            return
        if length > self._max_bytes:
            detail = f"The request body may hold at most {self._max_bytes} bytes."
            await send_problem(send, scope["path"], 413, None, "Request Entity Too Large", detail, _CLOSE)
            return
        try:
            async with asyncio.timeout(self._deadline):
                body = await self._read(receive)
        except TimeoutError:
            detail = f"The request body did not arrive within {self._deadline:g} s."
            await send_problem(send, scope["path"], 408, None, "Request Timeout", detail, _CLOSE)
            return
        except _TooLargeError:
            detail = f"The request body may hold at most {self._max_bytes} bytes."
            await send_problem(send, scope["path"], 413, None, "Request Entity Too Large", detail, _CLOSE)
            return
        except _GoneError:
            return  # the client left before sending its body: nobody to answer
        await self._app(scope, _replay(body, receive), send)

    async def _read(self, receive: ASGIReceiveCallable) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Any = await receive()
            if message["type"] == "http.disconnect":
                raise _GoneError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_bytes:
                raise _TooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
    """The body as one message, then the connection's own messages (a disconnect, when the client leaves)."""
    sent = False

    async def replayed() -> ASGIReceiveEvent:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed

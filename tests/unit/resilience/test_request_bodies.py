"""BodyBuffer in the app's own process, with ASGI messages made by hand: which requests it reads first, what the
app then receives, and the whole answer when a body is too large, too slow or never comes. (tests/chaos/test_edge.py
proves the same over real sockets, in a server process of its own.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest

from app.src.resilience.request_bodies import BodyBuffer

MAX = 10


class App:
    """Reads every message it is given until the body ends (and one more), then answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        self.receive: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.receive = receive
        messages = []
        if scope["type"] == "http":
            while True:
                message = await receive()
                messages.append(message)
                if not message.get("more_body", False):
                    break
            messages.append(await receive())
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        self.calls.append((scope, messages))


class Client:
    def __init__(self, messages: Iterable[dict[str, Any]], *, then_wait: bool = False) -> None:
        self.pending = list(messages)
        self._then_wait = then_wait
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        if self._then_wait:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def answer(self) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
        """The one answer sent, checked against the ASGI spec: lowercase header names, no trailers, one body."""
        start, body = self.sent
        assert (start["type"], start["trailers"]) == ("http.response.start", False)
        assert (body["type"], body["more_body"]) == ("http.response.body", False)
        headers = dict(start["headers"])
        assert all(name == name.lower() for name in headers)
        assert headers[b"content-length"] == str(len(body["body"])).encode()
        return start["status"], headers, json.loads(body["body"])


def scope(*headers: tuple[bytes, bytes], path: str = "/api/things") -> dict[str, Any]:
    return {"type": "http", "path": path, "headers": [(b"host", b"api"), *headers]}


def chunks(*parts: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
            for index, part in enumerate(parts)]  # fmt: skip


async def run(request: dict[str, Any], client: Client, deadline: float = 5.0) -> App:
    app = App()
    await BodyBuffer(app, max_bytes=MAX, deadline=deadline)(request, client.receive, client.send)  # type: ignore[arg-type]
    return app


@pytest.mark.parametrize("headers", [(), ((b"content-length", b"0"),)])
async def test_a_request_without_a_body_reaches_the_app_with_the_connections_own_receive(
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    client = Client([{"type": "http.request", "body": b"", "more_body": False}])
    app = await run(scope(*headers), client)
    assert app.receive == client.receive
    assert len(app.calls) == 1


async def test_other_kinds_of_connection_pass_through() -> None:
    client = Client([])
    app = await run({"type": "lifespan"}, client)
    assert (app.receive, app.calls) == (client.receive, [({"type": "lifespan"}, [])])


@pytest.mark.parametrize(
    "headers",
    [
        ((b"content-length", b"10"),),
        ((b"transfer-encoding", b"chunked"),),
        ((b"content-length", b"ten"),),  # not a number: read as a body of unknown length, to its end
    ],
)
async def test_a_body_arriving_in_pieces_reaches_the_app_whole_then_the_connections_messages(
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    client = Client([*chunks(b"0123", b"", b"456789")])
    app = await run(scope(*headers), client)
    [(_, messages)] = app.calls
    assert messages == [{"type": "http.request", "body": b"0123456789", "more_body": False},
                        {"type": "http.disconnect"}]  # fmt: skip
    assert [message["type"] for message in client.sent] == ["http.response.start", "http.response.body"]


async def test_a_message_without_a_body_field_counts_as_empty() -> None:
    client = Client([{"type": "http.request", "more_body": True}, {"type": "http.request", "body": b"ab"}])
    app = await run(scope((b"transfer-encoding", b"chunked")), client)
    assert app.calls[0][1][0] == {"type": "http.request", "body": b"ab", "more_body": False}


async def test_a_content_length_over_the_limit_is_413_before_a_byte_is_read() -> None:
    client = Client(chunks(b"x" * (MAX + 1)))
    app = await run(scope((b"content-length", str(MAX + 1).encode())), client)
    assert app.calls == []
    status, headers, body = client.answer()
    assert status == 413
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/problem+json"
    assert body == {"type": "about:blank", "title": "Request Entity Too Large", "status": 413,
                    "detail": f"The request body may hold at most {MAX} bytes.", "instance": "/api/things",
                    "request_id": None}  # fmt: skip
    assert len(client.pending) == 1  # nothing was read


async def test_a_chunked_body_over_the_limit_is_413_once_it_passes_it() -> None:
    exactly = Client(chunks(b"x" * 4, b"x" * (MAX - 4)))
    assert len((await run(scope((b"transfer-encoding", b"chunked")), exactly)).calls) == 1
    over = Client(chunks(b"x" * 4, b"x" * (MAX - 3), b"never read"))
    app = await run(scope((b"transfer-encoding", b"chunked"), path="/api/big"), over)
    assert app.calls == []
    status, headers, body = over.answer()
    assert (status, headers[b"connection"], body["instance"]) == (413, b"close", "/api/big")
    assert body["title"] == "Request Entity Too Large"
    assert body["detail"] == f"The request body may hold at most {MAX} bytes."
    assert len(over.pending) == 1


async def test_a_body_that_does_not_arrive_by_the_deadline_is_408_and_the_connection_closed() -> None:
    client = Client(chunks(b"01", b"23"), then_wait=True)
    client.pending[-1]["more_body"] = True  # and the rest never comes
    app = await run(scope((b"content-length", b"10")), client, deadline=0.05)
    assert app.calls == []
    status, headers, body = client.answer()
    assert (status, headers[b"connection"]) == (408, b"close")
    assert (body["title"], body["detail"]) == ("Request Timeout", "The request body did not arrive within 0.05 s.")
    assert body["instance"] == "/api/things"


async def test_a_client_that_leaves_before_its_body_ends_gets_nothing_and_the_app_never_runs() -> None:
    client = Client([{"type": "http.request", "body": b"01", "more_body": True}])
    app = await run(scope((b"content-length", b"10")), client)
    assert (app.calls, client.sent) == ([], [])

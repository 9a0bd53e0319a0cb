"""The fault engine in front of a provider's routes (ASGI, so it can hold, mangle or cut any response)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import TYPE_CHECKING, Any, cast

from simulators.engine.engine import FaultEngine, Verdict
from simulators.engine.problems import problem_body
from simulators.engine.rules import SlowBody, Status
from simulators.engine.transport import close, reset, transport_of

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, Scope

CONTROL_PREFIX = "/__sim/"
VERDICT_KEY = "simulator.verdict"
ENTRY_KEY = "simulator.journal_entry"
MAX_BODY_BYTES = 1_048_576

Message = dict[str, Any]


class FaultInjectionMiddleware:
    def __init__(self, app: ASGIFramework, engine: FaultEngine) -> None:
        self._app = app
        self._engine = engine

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        extras = cast("dict[str, Any]", scope)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        body = await _read_body(receive)
        sim_scope = headers.get("x-sim-scope")
        entry = self._engine.journal.record(
            time=self._engine.clock.now(sim_scope),
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
            body=body,
            scope=sim_scope,
        )
        verdict = self._engine.decide(
            scope["method"], scope["path"], sim_scope, _api_key(headers), headers.get("idempotency-key")
        )
        extras[VERDICT_KEY] = verdict
        extras[ENTRY_KEY] = entry
        entry.fault = verdict.fault

        async def journalled(message: Any) -> None:
            """The status goes into the journal as the answer starts: a client that has its answer may read the
            journal at once and must find it there."""
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        try:
            status = await self._respond(scope, _replay(body, receive), receive, journalled, verdict)
            entry.status = status if status is not None else entry.status
        finally:
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)

    async def _respond(
        self,
        scope: Scope,
        replayed: ASGIReceiveCallable,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        verdict: Verdict,
    ) -> int | None:
        if verdict.delay_ms["before"]:
            await asyncio.sleep(verdict.delay_ms["before"] / 1000)
        action = verdict.action
        kind = None if action is None else action.kind
        transport = transport_of(scope)
        if kind == "status":
            return await _send_status(send, action, verdict.headers)
        if kind == "hang":
            try:
                async with asyncio.timeout(action.seconds):
                    await _until_disconnected(receive)
            except TimeoutError:
                close(transport)
                await _until_disconnected(receive)
            return None
        if kind in ("reset", "empty"):
            (reset if kind == "reset" else close)(transport)
            await _until_disconnected(receive)
            return None
        if (
            kind is None
            and not verdict.delay_ms["after"]
            and not verdict.delay_ms["processing"]
            and not verdict.headers
        ):
            return await self._pass_through(scope, replayed, send)
        return await self._mangle(scope, replayed, receive, send, verdict)

    async def _pass_through(self, scope: Scope, replayed: ASGIReceiveCallable, send: ASGISendCallable) -> int | None:
        status: int | None = None

        async def observe(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self._app(scope, replayed, observe)
        return status

    async def _mangle(
        self,
        scope: Scope,
        replayed: ASGIReceiveCallable,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        verdict: Verdict,
    ) -> int | None:
        messages: list[Message] = []

        async def capture(message: Any) -> None:
            messages.append(message)

        await self._app(scope, replayed, capture)
        # A route that has no point to hold its work at (see Latency) spends its processing time here.
        delay = verdict.delay_ms["after"] + verdict.delay_ms["processing"]
        if delay:
            await asyncio.sleep(delay / 1000)
        start, body = messages[0], b"".join(message.get("body", b"") for message in messages[1:])
        status: int = start["status"]
        headers = [*start["headers"], *((k.lower().encode(), v.encode()) for k, v in verdict.headers.items())]
        action = verdict.action
        kind = None if action is None else action.kind
        transport = transport_of(scope)
        if kind == "drop_after_commit":
            reset(transport)
            await _until_disconnected(receive)
            return None
        if kind == "malformed":
            body = body[: len(body) // 2]
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        declared = len(body)
        await send({"type": "http.response.start", "status": status, "headers": [*headers, _length(declared)]})
        if kind == "truncated":
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            close(transport)
            await _until_disconnected(receive)
            return status
        if isinstance(action, SlowBody):
            size = max(1, -(-len(body) // action.chunks))
            pieces = [body[index : index + size] for index in range(0, len(body), size)] or [b""]
            for piece in pieces[:-1]:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                await asyncio.sleep(action.seconds / len(pieces))
            body = pieces[-1]
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return status


def _length(size: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(size).encode())


def _api_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    return authorization[7:] if authorization[:7].lower() == "bearer " else None


async def _read_body(receive: ASGIReceiveCallable) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
    delivered = False

    async def replayed() -> ASGIReceiveEvent:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _until_disconnected(receive: ASGIReceiveCallable) -> None:
    message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()


async def hold_processing(scope: Any) -> None:
    """Called by a provider at the point where it works (holding an idempotency key): the `processing` latency."""
    verdict: Verdict | None = scope.get(VERDICT_KEY)
    if verdict is not None and verdict.delay_ms["processing"]:
        delay, verdict.delay_ms["processing"] = verdict.delay_ms["processing"], 0.0
        await asyncio.sleep(delay / 1000)


async def _send_status(send: ASGISendCallable, action: Status, extra: dict[str, str]) -> int:
    detail = f"The simulator answered {action.status} as a fault rule asked."
    body = json.dumps(action.body or problem_body(action.status, "Injected fault", detail)).encode()
    headers = [(b"content-type", b"application/json"), _length(len(body))]
    headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
    if action.retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(action.retry_after)).encode()))
    await send({"type": "http.response.start", "status": action.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return action.status

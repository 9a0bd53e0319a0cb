"""A provider served in the test's own process over real HTTP, answering each request as the test scripts, and
keeping what it received: for the provider client's tests (tests/unit/resilience/test_provider_*.py)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.support.processes import free_port

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH = "/v1/thing"


def status(code: int, headers: dict[str, str] | None = None) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": code}, status=code, headers=headers)

    return answer


def body_of(size: int, *, streamed: bool) -> Answer:
    """An answer of `size` bytes, with its Content-Length or streamed in chunks without one."""

    async def answer(request: web.Request) -> web.StreamResponse:
        if not streamed:
            return web.Response(body=b"x" * size)
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, size, 1000):
            await response.write(b"x" * min(1000, size - start))
        await response.write_eof()
        return response

    return answer


async def hang(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.json_response({})


async def reset(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()  # the request arrived; the connection dies before any answer
    await asyncio.sleep(5)
    return web.json_response({})


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Provider:
    url: str
    script: deque[Answer]
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def received(self) -> list[str]:
        """The methods of the requests received, in order."""
        return [request.method for request in self.requests]


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    port = free_port()
    served = Provider(f"http://127.0.0.1:{port}", deque())

    async def scripted(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        served.requests.append(Received(request.method, request.path, CIMultiDict(request.headers), body))
        served.arrived.set()
        return await served.script.popleft()(request)

    application = web.Application()
    application.router.add_route("*", "/{path:.*}", scripted)
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield served
    await runner.cleanup()

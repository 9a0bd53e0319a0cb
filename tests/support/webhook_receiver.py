"""An HTTP endpoint of the test's own that records the webhooks it receives and answers as told."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.processes import callback_host, free_port


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    url: str = ""
    received: list[Delivery] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)  # answers to give, in order; 200 once empty
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        delivery = Delivery(dict(request.headers), await request.read())
        status = self.statuses.popleft() if self.statuses else 200
        async with self._arrived:
            self.received.append(delivery)
            self._arrived.notify_all()
        return web.Response(status=status)

    async def wait_for(self, count: int, within: float = 10) -> list[Delivery]:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return list(self.received)


async def start_receiver() -> tuple[WebhookReceiver, web.AppRunner]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/webhooks", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    host = callback_host()
    await web.TCPSite(runner, host, port).start()
    receiver.url = f"http://{host}:{port}/webhooks"
    return receiver, runner

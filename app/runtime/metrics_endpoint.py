"""Prometheus's scrape: the registry in the text format, behind a bearer token when METRICS_TOKEN is set, and on a
port of its own when METRICS_PORT is set (so the metrics need not be reachable where the API is)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CHALLENGE = 'Bearer realm="metrics"'


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus's text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def authorized(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape may read the metrics: always without a token; else only with `Bearer <token>`."""
    if token is None:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


@asynccontextmanager
async def metrics_server(registry: CollectorRegistry, host: str, port: int, token: str | None) -> AsyncIterator[None]:
    """GET /metrics on host:port while the block runs (in the caller's event loop, where the numbers change)."""

    async def scrape(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization"), token):
            return web.Response(status=401, text="A bearer token is needed.\n", headers={"WWW-Authenticate": CHALLENGE})
        body, content_type = exposition(registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    application = web.Application()
    application.router.add_get("/metrics", scrape)
    runner = web.AppRunner(application, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()

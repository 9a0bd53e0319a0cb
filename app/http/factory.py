"""`create_app()`: the HTTP service around the composition root, which it opens while it serves."""

from __future__ import annotations

import gc
import re
from contextlib import AsyncExitStack
from importlib.metadata import version
from typing import Any

from prometheus_client import CollectorRegistry
from quart import Quart, g
from quart_schema import QuartSchema

from app.bootstrap import open_services
from app.http.address_limits import AddressLimiter, ClientAddresses
from app.http.cors import CorsMiddleware
from app.http.metrics import HttpMetrics
from app.http.openapi import SECURITY_SCHEMES, ProblemDocumentingProvider
from app.http.problems import register_error_handlers
from app.http.services import attach_services, services
from app.middlewares import RequestContextMiddleware, RequestGuards
from app.routes.adapter import exempt_from_limits, register_blueprints
from app.runtime.metrics_endpoint import metrics_server
from app.settings import Settings, load_settings
from app.src.resilience.busy_limit import BusyLimit, BusyMetrics, BusyRule
from app.src.resilience.inbound import INBOUND_EXTENSION, ClientRateLimiter, Inbound, InboundMetrics, LoadShedder
from app.src.resilience.lifo_slots import LifoSlots
from app.src.resilience.request_bodies import BodyBuffer
from app.src.utils.logs import configure_logging

ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Client-Id", "X-Request-ID"]
BUSY_PROBE_INTERVAL = 0.01  # seconds: the limit goes from its ceiling to its floor in a few probes
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy", "Idempotent-Replayed", "ETag"]


def create_app(settings: Settings | None = None) -> Quart:
    """The app for `settings`; without them (uvicorn's --factory), from the environment, which must name PROFILE."""
    settings = settings or load_settings(profile_required=True)
    configure_logging(settings.log_level, settings.log_format)
    app = Quart("app", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        swagger_ui_path=None,  # app/routes/docs.py serves it, from the package and under a CSP
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "Proving Ground", "version": version("proving-ground")},
        openapi_provider_class=ProblemDocumentingProvider,
        security_schemes=SECURITY_SCHEMES,
    )
    register_error_handlers(app)
    register_blueprints(app, metrics_route=settings.metrics_port is None)
    registry = CollectorRegistry(auto_describe=True)
    requests, inbound = HttpMetrics(registry), InboundMetrics(registry)
    app.before_request(_begin_reads)
    app.teardown_request(_end_reads)
    app.before_request(RequestGuards(_address_limiter(settings, inbound)).check)
    # A limit that follows the loop starts at its floor and grows as it is used (app/src/resilience/busy_limit.py).
    following = settings.inbound_busy_target is not None
    start = settings.inbound_concurrency_floor if following else settings.inbound_concurrency
    slots = LifoSlots(start, standing_wait=settings.inbound_standing_wait)
    busy_limit = _busy_limit(settings, slots, registry)
    app.asgi_app = _with_middleware(app.asgi_app, settings, requests, inbound, slots)  # type: ignore[method-assign]
    # The edge (python -m app serve) admits and refuses early with the same slots, counter, exemptions and wait.
    app.extensions[INBOUND_EXTENSION] = Inbound(slots, inbound.shed, exempt_from_limits, settings.inbound_max_wait)
    _serve_with_services(app, settings, registry, busy_limit)
    return app


def _busy_limit(settings: Settings, slots: LifoSlots, registry: CollectorRegistry) -> BusyLimit | None:
    if settings.inbound_busy_target is None:
        return None
    rule = BusyRule(settings.inbound_concurrency_floor, settings.inbound_concurrency, settings.inbound_busy_target)
    window = settings.inbound_max_wait
    return BusyLimit(slots, rule, interval=BUSY_PROBE_INTERVAL, window=window, metrics=BusyMetrics(registry))


def _serve_with_services(
    app: Quart, settings: Settings, registry: CollectorRegistry, busy_limit: BusyLimit | None
) -> None:
    """Open the composition root when the app starts serving and close it when it stops."""
    stack = AsyncExitStack()

    @app.before_serving
    async def open_root() -> None:
        attach_services(app, await stack.enter_async_context(open_services(settings, registry, serving=True)))
        if settings.metrics_port is not None:
            token = None if settings.metrics_token is None else settings.metrics_token.get_secret_value()
            host = settings.metrics_host or settings.listen_host
            await stack.enter_async_context(metrics_server(registry, host, settings.metrics_port, token))
        if busy_limit is not None:
            await stack.enter_async_context(busy_limit.following())
        # Everything built so far lives as long as the process: keep it out of the collector's full passes,
        # which would otherwise walk every module, model and schema object and stall requests for milliseconds.
        gc.freeze()

    @app.after_serving
    async def close_root() -> None:
        attach_services(app, None)
        await stack.aclose()


async def _begin_reads() -> None:
    """A request's reads share one connection, taken at its first read (app/src/database/read_pool.py)."""
    g.reads = services().database.request_reads()


async def _end_reads(error: BaseException | None) -> None:
    reads = g.get("reads")
    if reads is not None:
        await reads.end()


def _address_limiter(settings: Settings, metrics: InboundMetrics) -> AddressLimiter | None:
    if settings.address_rate is None:
        return None
    return AddressLimiter(
        ClientAddresses(settings.trusted_proxies),
        rate=settings.address_rate,
        burst=settings.address_burst,
        max_addresses=settings.client_rate_max_clients,
        metrics=metrics,
    )


def _with_middleware(
    asgi_app: Any, settings: Settings, requests: HttpMetrics, inbound: InboundMetrics, slots: LifoSlots
) -> RequestContextMiddleware:
    """Outermost first: request context (id, access log, metrics, security headers), CORS, per-client rate
    limits, the whole body read (outside any slot), load shedding."""
    asgi_app = LoadShedder(
        asgi_app,
        slots=slots,
        max_wait=settings.inbound_max_wait,
        retry_after=settings.inbound_retry_after,
        exempt=exempt_from_limits,
        metrics=inbound,
    )
    asgi_app = BodyBuffer(asgi_app, max_bytes=settings.max_body_bytes, deadline=settings.body_timeout)
    if settings.client_rate is not None:
        asgi_app = ClientRateLimiter(
            asgi_app,
            rate=settings.client_rate,
            burst=settings.client_burst,
            max_clients=settings.client_rate_max_clients,
            exempt=exempt_from_limits,
            metrics=inbound,
        )
    if settings.cors_origins:
        origins = [_origin(origin) for origin in settings.cors_origins]
        asgi_app = CorsMiddleware(
            asgi_app, origins, allow_headers=ALLOWED_HEADERS, expose_headers=EXPOSED_HEADERS, max_age=600
        )
    return RequestContextMiddleware(asgi_app, requests)


def _origin(origin: str) -> str | re.Pattern[str]:
    return re.compile(origin.removeprefix("re:")) if origin.startswith("re:") else origin

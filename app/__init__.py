"""Proving Ground: `create_app()` builds the service (`uvicorn app:create_app --factory`)."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from quart import Quart
from quart_cors import cors
from quart_schema import QuartSchema

from .authentication import BearerAuthenticator
from .errors import register_error_handlers
from .lifecycle import open_resources_while_serving
from .logs import configure_logging
from .metrics import Metrics
from .middlewares import RequestContextMiddleware, RequestGuards
from .openapi import SECURITY_SCHEMES, ProblemDocumentingProvider
from .providers import build_providers
from .routes.adapter import GUARDED_PREFIX, OPEN_PREFIX, register_blueprints
from .schema import head_revision
from .settings import Settings, load_settings
from .src.resilience.inbound import ClientRateLimiter, LoadShedder
from .state import AppState, app_state, attach_state

__all__ = ["Settings", "create_app"]

ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Client-Id", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy", "Idempotent-Replayed", "ETag"]


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        swagger_ui_path="/docs",
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "Proving Ground", "version": version("proving-ground")},
        openapi_provider_class=ProblemDocumentingProvider,
        security_schemes=SECURITY_SCHEMES,
    )
    if settings.cors_origins:
        cors(
            app,
            allow_origin=[_origin(origin) for origin in settings.cors_origins],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=600,
        )
    register_error_handlers(app)
    guards = RequestGuards(client_id_required_prefix=GUARDED_PREFIX, client_id_exempt_prefixes=[OPEN_PREFIX])
    app.before_request(guards.check)
    register_blueprints(app)
    metrics = Metrics()
    providers = build_providers(settings, metrics)
    attach_state(
        app,
        AppState(settings=settings, metrics=metrics, guards=guards, head_revision=head_revision(), providers=providers),
    )
    guards.authenticators.append(
        BearerAuthenticator(
            lambda: app_state(app).require_auth(),
            protected_prefix=GUARDED_PREFIX,
            exempt_prefixes=(OPEN_PREFIX,),
        )
    )
    app.asgi_app = _with_middleware(app.asgi_app, settings, metrics)  # type: ignore[method-assign]
    open_resources_while_serving(app)
    return app


def _with_middleware(asgi_app: Any, settings: Settings, metrics: Metrics) -> RequestContextMiddleware:
    """Outermost first: request context (id, access log, metrics), load shedding, per-client rate limits."""
    exempt = (OPEN_PREFIX, "/metrics")
    if settings.client_rate is not None:
        asgi_app = ClientRateLimiter(
            asgi_app,
            rate=settings.client_rate,
            burst=settings.client_burst,
            max_clients=settings.client_rate_max_clients,
            exempt_prefixes=exempt,
            metrics=metrics.inbound,
        )
    shedder = LoadShedder(
        asgi_app,
        limit=settings.inbound_concurrency,
        max_wait=settings.inbound_max_wait,
        retry_after=settings.inbound_retry_after,
        exempt_prefixes=exempt,
        metrics=metrics.inbound,
    )
    return RequestContextMiddleware(shedder, metrics.http)


def _origin(origin: str) -> str | re.Pattern[str]:
    return re.compile(origin.removeprefix("re:")) if origin.startswith("re:") else origin

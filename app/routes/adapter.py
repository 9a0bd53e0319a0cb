"""Every blueprint, the prefix it serves under, and what each path asks of its callers."""

from __future__ import annotations

from enum import Enum

from quart import Quart

from app.routes import auth, billing, catalog, common, docs, links, metrics

API_PREFIX = "/api"
_GUARDED = f"{API_PREFIX}/"
_EXEMPT = (f"{API_PREFIX}/common/", "/metrics")
_FROM_PROVIDERS = (f"{API_PREFIX}/billing/webhooks/",)  # the provider calls these: its signature is the guard


class Access(Enum):
    GUARDED = "guarded"  # /api/*: X-Client-Id, and a bearer token unless the route is @public; shed and rate limited
    OPEN = "open"  # /links, webhooks, the OpenAPI document, /docs, unknown paths: no guard; shed and rate limited
    EXEMPT = "exempt"  # health, readiness, version and /metrics: what probes and scrapers call, never refused


def access_of(path: str) -> Access:
    """What a path (or a route template) asks of its callers: the one rule the guards, the inbound limits and the
    OpenAPI document follow."""
    if path.startswith(_EXEMPT):
        return Access.EXEMPT
    if path.startswith(_FROM_PROVIDERS):
        return Access.OPEN
    if path.startswith(_GUARDED):
        return Access.GUARDED
    return Access.OPEN


def exempt_from_limits(path: str) -> bool:
    return access_of(path) is Access.EXEMPT


def register_blueprints(app: Quart, *, metrics_route: bool = True) -> None:
    """Every blueprint; /metrics too unless the metrics have a port of their own."""
    for name, module in (("auth", auth), ("catalog", catalog), ("billing", billing), ("common", common)):
        app.register_blueprint(module.blueprint, url_prefix=f"{API_PREFIX}/{name}")
    app.register_blueprint(docs.blueprint)
    app.register_blueprint(links.blueprint, url_prefix="/links")
    if metrics_route:
        app.register_blueprint(metrics.blueprint)

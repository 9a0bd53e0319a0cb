"""What every request passes through before its route: request id, access log and metrics (ASGI, around the whole
app), then the guards (route template, X-Client-Id, the bearer token)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, cast

from quart import Request, current_app, g, request

from app.http.address_limits import AddressLimiter, is_address_limited
from app.http.authentication import authenticate
from app.http.metrics import HttpMetrics
from app.http.problems import ProblemError
from app.routes.adapter import Access, access_of
from app.src.utils import tracing
from app.src.utils.logs import get_logger, request_id_var

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

ROUTE_KEY = "proving_ground.route"
CLIENT_ID_KEY = "proving_ground.client_id"
REQUEST_ID_KEY = "proving_ground.request_id"
UNMATCHED_ROUTE = "<unmatched>"
CLIENT_CLOSED_REQUEST = 499

REQUEST_ID_HEADER = b"x-request-id"
_WELL_FORMED_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_WELL_FORMED_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# On every answer: no content sniffing, and a policy that lets a browser run nothing from it (an API returns data,
# never a page); the documentation page runs the Swagger UI from this origin. HSTS where the request came over TLS.
_NO_SNIFFING = (b"x-content-type-options", b"nosniff")
_API_POLICY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOCS_POLICY = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_DOCS_PREFIX = "/docs"


def _security_headers(path: str, scheme: str) -> tuple[tuple[bytes, bytes], ...]:
    policy = _DOCS_POLICY if path.startswith(_DOCS_PREFIX) else _API_POLICY
    return (_NO_SNIFFING, policy, _HSTS) if scheme == "https" else (_NO_SNIFFING, policy)


class RequestContextMiddleware:
    """ASGI middleware around the whole app, so that even errors raised by the framework are logged and counted."""

    def __init__(self, app: ASGIFramework, metrics: HttpMetrics) -> None:
        self._app = app
        self._metrics = metrics
        self._log = get_logger("access")

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        extras = cast("dict[str, Any]", scope)
        request_id = _accepted_request_id(scope["headers"])
        extras[REQUEST_ID_KEY] = request_id
        token = request_id_var.set(request_id)
        added = (
            (REQUEST_ID_HEADER, request_id.encode()),
            *_security_headers(scope["path"], scope.get("scheme", "http")),
        )
        status: int | None = None

        async def send_with_request_id(message: ASGISendEvent) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message["headers"], *added]
            await send(message)

        active = tracing.tracer()
        traced = (
            nullcontext()
            if active is None
            else tracing.server_span(active, scope["method"], _trace_headers(scope["headers"]))
        )
        with traced as span:
            try:
                await self._app(scope, receive, send_with_request_id)
            except BaseException:
                status = status or 500  # the server answers 500 for an error that escaped the app
                raise
            finally:
                # No response and no error: the client went away first ("499 client closed request", as nginx says).
                status = status or CLIENT_CLOSED_REQUEST
                duration = time.perf_counter() - started
                route: str = extras.get(ROUTE_KEY, UNMATCHED_ROUTE)
                self._metrics.observe(scope["method"], route, status, duration)
                if span is not None:
                    tracing.finish_server_span(span, scope["method"], route, status)
                self._log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(duration * 1000, 3),
                    client_id=extras.get(CLIENT_ID_KEY),
                )
                request_id_var.reset(token)


def _trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The caller's W3C trace context, if it sent one."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }


def _accepted_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _WELL_FORMED_REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return os.urandom(16).hex()


class RequestGuards:
    """A `before_request` hook: records the route template; on a guarded route, requires a well-formed
    X-Client-Id, takes a token per client address on the routes limited by address, then requires a bearer
    token unless the route is public (so a request without either is told of the client id first)."""

    def __init__(self, address_limiter: AddressLimiter | None) -> None:
        self._address_limiter = address_limiter

    async def check(self) -> None:
        # One context lookup each, rather than one per attribute through the proxies.
        current: Request = request._get_current_object()  # type: ignore[attr-defined]
        rule = current.url_rule
        if rule is None:
            return  # routing failed: the 404 or 405 speaks first
        extras = cast("dict[str, Any]", current.scope)
        extras[ROUTE_KEY] = rule.rule
        request_globals = g._get_current_object()
        request_globals.clientId = None
        request_globals.profile = None
        if access_of(current.path) is not Access.GUARDED:
            return
        request_globals.clientId = extras[CLIENT_ID_KEY] = _client_id(current)
        view = current_app.view_functions.get(current.endpoint or "")
        if view is None:
            return
        if self._address_limiter is not None and is_address_limited(view):
            self._address_limiter.check(current)
        request_globals.profile = await authenticate(current, view)


def _client_id(current: Request) -> str:
    client_id = current.headers.get("X-Client-Id")
    if client_id is None:
        raise ProblemError(400, "The X-Client-Id header is required.", slug="missing-client-id")
    if not _WELL_FORMED_CLIENT_ID.fullmatch(client_id):
        raise ProblemError(
            400,
            "X-Client-Id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
            slug="malformed-client-id",
        )
    return client_id

"""CORS for the origins in CORS_ORIGINS, as ASGI middleware ahead of everything that may refuse a request: a
preflight is answered here, before the load shedding, the rate limits and the guards (which would ask it for an
X-Client-Id and a token it cannot send), and every answer to an allowed origin, 429 and 503 included, carries the
headers a browser needs to read it (Retry-After among them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
_VARY = (b"vary", b"Origin")


class CorsMiddleware:
    def __init__(
        self,
        app: ASGIFramework,
        origins: Sequence[str | re.Pattern[str]],
        *,
        allow_headers: Sequence[str],
        expose_headers: Sequence[str],
        max_age: int,
    ) -> None:
        self._app = app
        self._exact = {origin.encode() for origin in origins if isinstance(origin, str)}
        self._patterns = [origin for origin in origins if isinstance(origin, re.Pattern)]
        self._expose = (b"access-control-expose-headers", ", ".join(expose_headers).encode())
        self._preflight = [
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ", ".join(allow_headers).encode()),
            (b"access-control-max-age", str(max_age).encode()),
        ]

    def _allowed(self, origin: bytes) -> bool:
        if origin in self._exact:
            return True
        text = origin.decode("latin-1")
        return any(pattern.fullmatch(text) for pattern in self._patterns)

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        origin, preflight = None, False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        allowed = origin is not None and self._allowed(origin)
        if preflight and scope["method"] == "OPTIONS":
            headers = [_VARY, (b"content-length", b"0")]
            if allowed:
                headers += [(b"access-control-allow-origin", origin), *self._preflight]  # type: ignore[list-item]
            await send({"type": "http.response.start", "status": 204, "headers": headers, "trailers": False})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        added = [_VARY, (b"access-control-allow-origin", origin), self._expose] if allowed else [_VARY]

        async def send_with_cors(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *added]
            await send(message)

        await self._app(scope, receive, send_with_cors)

"""Conditional GETs (RFC 9110 13.1.2): a weak ETag made from the tag a service gives, and 304 Not Modified when the
request's If-None-Match holds it. Weak, because what the body says of its own age moves on while what it shows
does not."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from quart import Response, request

CONDITIONAL_ATTRIBUTE = "_conditional_headers"
F = TypeVar("F", bound=Callable[..., Any])


def etag(tag: str) -> str:
    return f'W/"{tag}"'


def _opaque(entity_tag: str) -> str:
    return entity_tag.strip().removeprefix("W/")


def holds(if_none_match: str | None, current: str) -> bool:
    """Whether If-None-Match lists `current` (weak comparison, as GET uses), or is `*`."""
    if not if_none_match:
        return False
    wanted = _opaque(current)
    return any(tag == "*" or _opaque(tag) == wanted for tag in if_none_match.split(","))


def answer(tag: str, body: Callable[[], str | bytes], headers: Mapping[str, str]) -> Response:
    """304 when the client has this representation already; else 200 with `body()` (made only then)."""
    all_headers = {"ETag": etag(tag), "Cache-Control": "no-cache", **headers}
    if holds(request.headers.get("If-None-Match"), all_headers["ETag"]):
        return Response(b"", status=304, headers=all_headers)
    return Response(body(), status=200, content_type="application/json", headers=all_headers)


def conditional(headers: Mapping[str, Mapping[str, Any]]) -> Callable[[F], F]:
    """Documents the route's If-None-Match, its 304, and `headers` (name -> OpenAPI header object) besides ETag."""

    def decorator(view: F) -> F:
        setattr(view, CONDITIONAL_ATTRIBUTE, dict(headers))
        return view

    return decorator

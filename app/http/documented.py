"""Request headers a route reads itself (no model validates them), named in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
HEADERS_ATTRIBUTE = "_documented_headers"


def reads_headers(*parameters: dict[str, Any]) -> Callable[[F], F]:
    """`parameters`: OpenAPI parameter objects (`"in": "header"`), added to the route's operation."""

    def decorator(view: F) -> F:
        setattr(view, HEADERS_ATTRIBUTE, [*getattr(view, HEADERS_ATTRIBUTE, []), *parameters])
        return view

    return decorator

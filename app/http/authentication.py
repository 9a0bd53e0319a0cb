"""The bearer-token step of the request guards, and `@public` for the guarded routes that need no token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import Request

from app.http.services import services
from app.src.api.auth.service import Profile
from app.src.api.common.errors import AuthFailure, UnauthorizedError

_PUBLIC_ATTRIBUTE = "proving_ground_public"
F = TypeVar("F", bound=Callable[..., Any])


def public(view: F) -> F:
    """Declares a route open to callers without an access token. Put it under the route decorator."""
    setattr(view, _PUBLIC_ATTRIBUTE, True)
    return view


def is_public(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _PUBLIC_ATTRIBUTE, False))


async def authenticate(request: Request, view: Callable[..., Any]) -> Profile | None:
    """Who calls a guarded route: None for a public route, else the profile its access token opens (or 401)."""
    if is_public(view):
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(
            "This route needs an access token: Authorization: Bearer <token>.", AuthFailure.MISSING_TOKEN
        )
    return await services().auth.authenticate(token.strip())

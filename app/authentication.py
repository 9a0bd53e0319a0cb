"""The authentication step of the request guards: a bearer access token on every `/api/*` route that is not
declared public (and not under /api/common); 401 problem+json with WWW-Authenticate otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import Request, current_app, g

from .src.api.auth.service import AuthService
from .src.utils.problems import ProblemError

PUBLIC_ATTRIBUTE = "proving_ground_public"
F = TypeVar("F", bound=Callable[..., Any])


def public(view: F) -> F:
    """Declares a route open to callers without an access token. Put it under the route decorator."""
    setattr(view, PUBLIC_ATTRIBUTE, True)
    return view


class BearerAuthenticator:
    def __init__(self, service: Callable[[], AuthService], protected_prefix: str, exempt_prefixes: tuple[str, ...]):
        self._service = service
        self._protected = protected_prefix
        self._exempt = exempt_prefixes

    async def __call__(self, request: Request) -> None:
        path = request.path
        if not path.startswith(self._protected) or path.startswith(self._exempt):
            return
        view = current_app.view_functions.get(request.endpoint or "")
        if view is None or getattr(view, PUBLIC_ATTRIBUTE, False):
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ProblemError(
                401,
                "This route needs an access token: Authorization: Bearer <token>.",
                slug="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        g.profile = await self._service().authenticate(token.strip())

"""/metrics in the Prometheus text format (here unless METRICS_PORT moves it to a port of its own)."""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import hide

from app.http.problems import ProblemError
from app.http.services import services
from app.runtime.metrics_endpoint import CHALLENGE, authorized, exposition

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
@hide
async def metrics() -> Response:
    opened = services()
    token = opened.settings.metrics_token
    if not authorized(request.headers.get("Authorization"), None if token is None else token.get_secret_value()):
        raise ProblemError(
            401, "The metrics need a bearer token.", slug="unauthorized", headers={"WWW-Authenticate": CHALLENGE}
        )
    body, content_type = exposition(opened.registry)
    return Response(body, content_type=content_type)

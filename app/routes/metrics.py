"""/metrics in the Prometheus text format."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import hide

from app.http.metrics import exposition
from app.http.services import services

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
@hide
async def metrics() -> Response:
    body, content_type = exposition(services().registry)
    return Response(body, content_type=content_type)

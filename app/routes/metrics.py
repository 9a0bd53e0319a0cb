"""/metrics in the Prometheus text format."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import hide

from ..metrics import CONTENT_TYPE_LATEST
from ..state import app_state

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
@hide
async def metrics() -> Response:
    return Response(app_state().metrics.render(), content_type=CONTENT_TYPE_LATEST)

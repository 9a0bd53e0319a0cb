"""/api/catalog: transport only (parse, call a service, shape the response)."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("catalog", __name__)

"""/api/common: liveness, readiness and version; no X-Client-Id needed."""

from __future__ import annotations

from importlib.metadata import version

from quart import Blueprint

from app.http.services import services
from app.http.validation import responds
from app.src.api.common.models.service import Health, Readiness, Version

blueprint = Blueprint("common", __name__)
_VERSION = version("proving-ground")
_HEALTH = Health()


@blueprint.get("/health")
@responds(Health)
async def health() -> Health:
    """Liveness: the process answers. It never touches the database."""
    return _HEALTH


@blueprint.get("/ready")
@responds(Readiness)
async def ready() -> Readiness:
    """Readiness: 503 problem+json while the database is unreachable or its schema is not at the newest migration."""
    return await services().readiness.check()


@blueprint.get("/version")
@responds(Version)
async def service_version() -> Version:
    return Version(name="proving-ground", version=_VERSION, profile=services().settings.profile)

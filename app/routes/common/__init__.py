"""/api/common: liveness, readiness and version; no X-Client-Id needed."""

from __future__ import annotations

from importlib.metadata import version

from quart import Blueprint

from ...src.api.common.models.service import Health, Readiness, Version
from ...src.api.common.readiness import check_readiness
from ...state import app_state
from ...validation import responds

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
    state = app_state()
    return await check_readiness(state.require_database(), state.head_revision, state.settings.ready_timeout)


@blueprint.get("/version")
@responds(Version)
async def service_version() -> Version:
    return Version(name="proving-ground", version=_VERSION, profile=app_state().settings.profile)

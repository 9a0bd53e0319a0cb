"""Every blueprint and the prefix it serves under."""

from __future__ import annotations

from quart import Quart

from . import auth, billing, catalog, common, metrics

API_PREFIX = "/api"
GUARDED_PREFIX = f"{API_PREFIX}/"  # these routes need X-Client-Id, and a bearer token unless declared public
OPEN_PREFIX = f"{API_PREFIX}/common/"  # except these: health, readiness and version answer anyone


def register_blueprints(app: Quart) -> None:
    for name, module in (("auth", auth), ("catalog", catalog), ("billing", billing), ("common", common)):
        app.register_blueprint(module.blueprint, url_prefix=f"{API_PREFIX}/{name}")
    app.register_blueprint(metrics.blueprint)

"""Where the routes find what the composition root opened for the app serving the current request."""

from __future__ import annotations

from quart import Quart, current_app

from app.bootstrap import Services

_KEY = "proving_ground.services"


def services() -> Services:
    """The services of the app serving this request; only while it serves (its `before_serving` opened them)."""
    return services_of(current_app)


def services_of(app: Quart) -> Services:
    opened: Services = app.extensions[_KEY]
    return opened


def attach_services(app: Quart, opened: Services | None) -> None:
    if opened is None:
        app.extensions.pop(_KEY, None)
    else:
        app.extensions[_KEY] = opened

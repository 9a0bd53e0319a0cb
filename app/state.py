"""What the app holds for its lifetime, kept on `app.extensions` and reached through `app_state()`."""

from __future__ import annotations

from dataclasses import dataclass, field

from quart import Quart, current_app

from .database import Database
from .metrics import Metrics
from .middlewares import RequestGuards
from .settings import Settings
from .src.api.auth.service import AuthService
from .src.resilience.client import ProviderClient

_KEY = "proving_ground"


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    guards: RequestGuards
    head_revision: str | None
    providers: dict[str, ProviderClient] = field(default_factory=dict)
    database: Database | None = field(default=None)
    auth: AuthService | None = field(default=None)

    def require_database(self) -> Database:
        if self.database is None:
            raise RuntimeError("the database is opened when the app starts serving")
        return self.database

    def require_auth(self) -> AuthService:
        if self.auth is None:
            raise RuntimeError("the auth service starts with the app")
        return self.auth


def attach_state(app: Quart, state: AppState) -> None:
    app.extensions[_KEY] = state


def app_state(app: Quart | None = None) -> AppState:
    state: AppState = (app or current_app).extensions[_KEY]
    return state

"""What the app holds while it serves: the database (an embedded one in dev and test when no DB_URI is
given), the provider clients and the auth service; opened in `before_serving`, closed in `after_serving`."""

from __future__ import annotations

import asyncio
import gc

from quart import Quart

from .database import Database, PoolSettings
from .embedded_postgres import EmbeddedPostgres
from .login_alerts import LoginAlerts
from .logs import get_logger
from .settings import Settings, new_token_key, parse_token_keys
from .src.api.auth.service import AuthPolicy, AuthService
from .src.encryption.passwords import PasswordHasher
from .src.encryption.tokens import TokenKeyRing
from .state import app_state


def _token_key_ring(settings: Settings) -> TokenKeyRing:
    """TOKEN_KEYS; in dev and test without it, a key made for this process (its tokens die with it)."""
    keys = settings.token_key_ring()
    if keys is None:
        get_logger("auth").warning("TOKEN_KEYS is not set: tokens are sealed with a key that lasts this process only")
        keys = parse_token_keys(new_token_key())
    return TokenKeyRing(keys)


def _auth_service(settings: Settings, database: Database, alerts: LoginAlerts) -> AuthService:
    policy = AuthPolicy(
        access_token_seconds=settings.access_token_seconds,
        session_seconds=settings.session_seconds,
        failures_per_hour=settings.login_failures_per_hour,
        failures_per_burst=settings.login_failures_per_burst,
        burst_seconds=settings.login_burst_seconds,
        totp_issuer=settings.totp_issuer,
    )
    hasher = PasswordHasher(settings.password_hash_concurrency)
    return AuthService(database, hasher, _token_key_ring(settings), policy, alerts.send)


def open_resources_while_serving(app: Quart) -> None:
    embedded: EmbeddedPostgres | None = None
    alerts: LoginAlerts | None = None

    @app.before_serving
    async def open_database() -> None:
        nonlocal embedded, alerts
        state = app_state(app)
        settings = state.settings
        if settings.db_uri is not None:
            uri = settings.db_uri.get_secret_value()
        else:
            embedded = EmbeddedPostgres(settings.embedded_database_dir)
            uri = await asyncio.to_thread(embedded.start)
            get_logger("database").info("embedded PostgreSQL started", data_dir=str(embedded.data_dir))
        pool = PoolSettings(settings.db_pool_size, settings.db_connect_timeout, settings.db_statement_timeout)
        state.database = Database(uri, pool)
        await state.database.initialize()
        for client in state.providers.values():
            await client.start()
        alerts = LoginAlerts(state.providers.get("notify"))
        state.auth = _auth_service(settings, state.database, alerts)
        # Everything built so far lives as long as the process: keep it out of the collector's full passes,
        # which would otherwise walk every module, model and schema object and stall requests for milliseconds.
        gc.freeze()

    @app.after_serving
    async def close_database() -> None:
        state = app_state(app)
        if alerts is not None:
            await alerts.drain()
        for client in state.providers.values():
            await client.close()
        if state.database is not None:
            await state.database.dispose()
            state.database = None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

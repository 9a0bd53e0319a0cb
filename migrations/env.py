"""Alembic runs here on a connection that `app.schema.upgrade` hands over (or, from the alembic CLI, on DB_URI)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.database import async_url
from app.settings import load_settings
from app.src.database.metadata import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_settings_database() -> None:
    settings = load_settings()
    if settings.db_uri is None:
        raise SystemExit("set DB_URI, or run `python -m app migrate`, which starts the embedded PostgreSQL")
    engine = create_async_engine(async_url(settings.db_uri.get_secret_value()), poolclass=NullPool)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: migrations run against a live database")
connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_on_settings_database())

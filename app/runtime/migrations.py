"""Alembic migrations, the only DDL: apply them, and know which revision is the newest."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.database import async_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Replicas that start together migrate one at a time: the others wait, then find nothing to do.
_MIGRATION_LOCK_KEY = 0x70726F76  # "prov"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def older_revisions() -> frozenset[str]:
    """Every revision of this build's migrations but the newest: a database at one of them needs `migrate`."""
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    return frozenset(script.revision for script in scripts.walk_revisions() if script.revision != head)


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(uri: str, revision: str = "head") -> None:
    engine = create_async_engine(async_url(uri), poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            await connection.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()

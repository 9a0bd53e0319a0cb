"""Test databases: one per pytest-xdist worker, cloned from a template that the migrations built once per run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from app.runtime.migrations import MIGRATIONS_DIR, head_revision, upgrade

_PROVISION_LOCK_KEY = 0x74657374  # "test"
HEAD = head_revision()  # the newest migration, which every test database is at


def migrations_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.relative_to(MIGRATIONS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def with_database(uri: str, name: str) -> str:
    return make_url(uri).set(database=name).render_as_string(hide_password=False)


def _asyncpg_dsn(uri: str) -> str:
    return make_url(uri).set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect(uri: str) -> asyncpg.Connection:
    return await asyncpg.connect(_asyncpg_dsn(uri))


async def provision_database(admin_uri: str, name: str) -> str:
    """Create `name` from the migrated template (building the template first if this run's migrations are new)."""
    template = f"pg_template_{migrations_fingerprint()}"
    admin = await _connect(admin_uri)
    try:
        await admin.execute("SELECT pg_advisory_lock($1)", _PROVISION_LOCK_KEY)
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template)
            if not exists:
                await _build_template(admin, admin_uri, template)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await admin.execute("SELECT pg_advisory_unlock($1)", _PROVISION_LOCK_KEY)
    finally:
        await admin.close()
    return with_database(admin_uri, name)


async def _build_template(admin: asyncpg.Connection, admin_uri: str, template: str) -> None:
    stale = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'pg\\_template\\_%'")
    for row in stale:
        await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    building = f"{template}_building"
    await admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{building}"')
    await upgrade(with_database(admin_uri, building))
    await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')


async def create_empty_database(admin_uri: str, name: str) -> str:
    admin = await _connect(admin_uri)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(admin_uri, name)


async def drop_database(admin_uri: str, name: str) -> None:
    admin = await _connect(admin_uri)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def truncate_all(uri: str) -> None:
    """Empty every table the migrations made (not alembic_version), so the next test starts clean."""
    connection = await _connect(uri)
    try:
        tables = await connection.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(row["name"] for row in tables)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def repository_root() -> Path:
    return Path(__file__).resolve().parents[2]

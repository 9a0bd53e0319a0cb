"""Test databases: one per pytest-xdist worker, cloned from a template that the migrations built once per run."""

from __future__ import annotations

import asyncio
import fcntl
import graphlib
import hashlib
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def kept_database(admin_uri: str) -> Iterator[str]:
    """A database that outlives the run, for runs too short to clone one each (the mutation harness's forked
    children: hundreds of one-mutant sessions, where a clone took 0.4 s and emptying a kept one takes 0.01 s).

    Each is a slot held for the run by a lock on a file, so runs side by side never share one; the first run in a
    slot clones it from the template, later runs empty it, whatever the last one left. A new migration names new
    slots (the old ones go with the old template)."""
    slots = Path(tempfile.gettempdir()) / f"pgtest-slots-{hashlib.sha256(admin_uri.encode()).hexdigest()[:12]}"
    slots.mkdir(exist_ok=True)
    for slot in itertools.count():
        held = (slots / f"{slot}.lock").open("w")
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.close()
            continue
        break
    with held:
        yield asyncio.run(_take_kept(admin_uri, f"pgtest_kept_{migrations_fingerprint()}_{slot}"))


async def _take_kept(admin_uri: str, name: str) -> str:
    admin = await _connect(admin_uri)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    if not exists:
        return await provision_database(admin_uri, name)
    uri = with_database(admin_uri, name)
    await truncate_all(uri)
    return uri


async def _build_template(admin: asyncpg.Connection, admin_uri: str, template: str) -> None:
    stale = await admin.fetch(
        "SELECT datname FROM pg_database WHERE datname LIKE 'pg\\_template\\_%' OR datname LIKE 'pgtest\\_kept\\_%'"
    )
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
    """Empty every table the migrations made (not alembic_version) and restart their sequences, so the next test
    starts as on a fresh clone.

    DELETE, referencing tables first, rather than TRUNCATE: TRUNCATE gives every table it names new files, 0.1 s
    for our 16 tables with fsync on, where deleting the few rows a test leaves takes a millisecond; and this runs
    after nearly every test."""
    connection = await _connect(uri)
    try:
        tables = await connection.fetch(
            "SELECT c.oid AS id, format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'"
        )
        references = await connection.fetch(
            "SELECT conrelid AS referencing, confrelid AS referenced FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid <> confrelid"
        )
        name_of = {row["id"]: row["name"] for row in tables}
        order = graphlib.TopologicalSorter({table: set() for table in name_of})
        for reference in references:
            if reference["referenced"] in name_of and reference["referencing"] in name_of:
                order.add(reference["referenced"], reference["referencing"])
        # names quoted by format('%I.%I'), above
        deletes = "".join(f"DELETE FROM {name_of[table]};" for table in order.static_order())  # noqa: S608
        async with connection.transaction():
            await connection.execute(deletes)
            await connection.execute(
                "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false) FROM pg_sequences "
                "WHERE schemaname = 'public'"
            )
    finally:
        await connection.close()


def repository_root() -> Path:
    return Path(__file__).resolve().parents[2]

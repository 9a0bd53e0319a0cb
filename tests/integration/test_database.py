"""The Database facade over real PostgreSQL: units of work, repositories, migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.runtime.migrations import head_revision, upgrade
from tests.support.postgres import HEAD


@pytest.fixture
async def database(database_uri: str) -> AsyncIterator[Database]:
    database = Database(database_uri)
    async with database.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE scratch (id int PRIMARY KEY, label text NOT NULL)"))
    try:
        yield database
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(text("DROP TABLE scratch"))
        await database.dispose()


class ScratchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, id_: int, label: str) -> None:
        await self.session.execute(text("INSERT INTO scratch VALUES (:id, :label)"), {"id": id_, "label": label})


async def labels(database: Database) -> list[str]:
    async with database.reads.connect() as connection:
        return list((await connection.execute(text("SELECT label FROM scratch ORDER BY id"))).scalars())


async def test_unit_of_work_keeps_what_it_commits(database: Database) -> None:
    async with database.unit_of_work() as uow:
        await uow.repository(ScratchRepository).add(1, "kept")
        await uow.commit()
    assert await labels(database) == ["kept"]


async def test_unit_of_work_without_commit_keeps_nothing(database: Database) -> None:
    async with database.unit_of_work() as uow:
        await uow.repository(ScratchRepository).add(1, "dropped")
    assert await labels(database) == []


async def test_unit_of_work_rolls_back_when_the_block_raises(database: Database) -> None:
    async def add_then_fail() -> None:
        async with database.unit_of_work() as uow:
            await uow.repository(ScratchRepository).add(1, "dropped")
            raise LookupError

    with pytest.raises(LookupError):
        await add_then_fail()
    assert await labels(database) == []


async def test_repository_is_built_once_per_unit_of_work(database: Database) -> None:
    async with database.unit_of_work() as first:
        assert first.repository(ScratchRepository) is first.repository(ScratchRepository)
        assert first.repository(ScratchRepository).session is first.session
    async with database.unit_of_work() as second:
        assert second.repository(ScratchRepository).session is second.session


async def test_unit_of_work_outside_its_block_refuses_to_work(database: Database) -> None:
    uow = database.unit_of_work()
    with pytest.raises(RuntimeError, match="outside its `async with` block"):
        uow.repository(ScratchRepository)


async def test_schema_revision_is_the_newest_migration(database: Database) -> None:
    assert await database.schema_revision() == head_revision() == HEAD


async def test_migrating_twice_changes_nothing(database: Database, database_uri: str) -> None:
    await upgrade(database_uri)
    assert await database.schema_revision() == head_revision()


@pytest.fixture
async def opened(database_uri: str) -> AsyncIterator[Database]:
    database = Database(database_uri)
    await database.initialize()
    yield database
    await database.dispose()


async def backend_of(database: Database) -> int:
    async with database.reading() as connection:
        pid: int = await connection.fetchval("SELECT pg_backend_pid()")
        return pid


async def test_the_reads_of_one_request_share_one_connection_until_it_ends(opened: Database) -> None:
    reads = opened.request_reads()
    first = await backend_of(opened)
    assert await backend_of(opened) == first
    assert opened.read_connections_in_use() == 1
    await reads.end()
    assert opened.read_connections_in_use() == 0


async def test_a_request_that_starts_to_write_gives_its_read_connection_back_first(opened: Database) -> None:
    reads = opened.request_reads()
    await backend_of(opened)
    async with opened.unit_of_work():
        assert opened.read_connections_in_use() == 0  # not held while the request writes, or calls out after
    await reads.end()


async def test_a_read_outside_a_request_gives_its_connection_back_at_once(opened: Database) -> None:
    await backend_of(opened)
    assert opened.read_connections_in_use() == 0


async def test_a_read_whose_connection_is_lost_runs_again_on_a_fresh_one(opened: Database) -> None:
    """The server ended a pooled connection while it sat idle; the next statement on it fails before reaching the
    database (as asyncpg reports it while the end is still in flight). The read runs once more, elsewhere."""
    reads = opened.request_reads()
    backends: list[int] = []

    async def query(connection: asyncpg.Connection) -> int:
        backends.append(connection.get_server_pid())
        if len(backends) == 1:
            raise asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
        pid: int = await connection.fetchval("SELECT pg_backend_pid()")
        return pid

    try:
        pid = await opened.read(query)
        assert len(backends) == 2
        assert pid == backends[1] != backends[0]
        assert await backend_of(opened) == pid  # the request keeps the fresh connection for its other reads
    finally:
        await reads.end()
    assert not await still_connected(opened, backends[0])  # dropped, never handed to the next request


async def still_connected(database: Database, pid: int) -> bool:
    """Whether backend `pid` is still there, allowing the server a moment to see its client leave."""
    for _ in range(50):
        async with database.reading() as connection:
            if not await connection.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return False
        await asyncio.sleep(0.1)
    return True


async def test_a_read_that_fails_otherwise_is_not_run_again(opened: Database) -> None:
    calls = 0

    async def query(connection: asyncpg.Connection) -> None:
        nonlocal calls
        calls += 1
        await connection.execute("SELECT * FROM no_such_table")

    with pytest.raises(asyncpg.UndefinedTableError):
        await opened.read(query)
    assert calls == 1

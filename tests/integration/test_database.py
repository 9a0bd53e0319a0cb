"""The Database facade over real PostgreSQL: units of work, repositories, migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator

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

"""The Database facade: units of work for writes (SQLAlchemy, its own pool), and cheap autocommit reads on plain
asyncpg (a pool of their own; see app/src/database/read_pool.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from sqlalchemy import make_url, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.src.database.failures import leave_block
from app.src.database.read_pool import Reading, ReadPool, RequestReads, Transaction
from app.src.database.unit_of_work import UnitOfWork
from app.src.utils.logs import module_logger

_log = module_logger("database")
T = TypeVar("T")


def async_url(uri: str) -> str:
    """Any PostgreSQL URI (libpq style, `postgres://`, or SQLAlchemy's) as SQLAlchemy's asyncpg URL."""
    url = make_url(uri.replace("postgres://", "postgresql://", 1) if uri.startswith("postgres://") else uri)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the database URI must be a postgresql:// URI")
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    size: int = 10  # connections for units of work (SQLAlchemy)
    read_size: int = 10  # connections for reads (asyncpg)
    connect_timeout: float = 5.0
    statement_timeout: float = 15.0


class Database:
    def __init__(self, uri: str, pool: PoolSettings | None = None) -> None:
        pool = pool or PoolSettings()
        self._warm_connections = min(pool.read_size, 4)
        server_settings = {
            "application_name": "proving-ground",
            "statement_timeout": str(int(pool.statement_timeout * 1000)),
        }
        self.engine: AsyncEngine = create_async_engine(
            async_url(uri),
            pool_size=pool.size,
            max_overflow=0,
            pool_timeout=pool.connect_timeout,
            connect_args={
                "timeout": pool.connect_timeout,
                "command_timeout": pool.statement_timeout,
                "server_settings": server_settings,
            },
        )
        # Reads that need no transaction skip SQLAlchemy's BEGIN/ROLLBACK round trips.
        self.reads: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_pool = ReadPool(
            driver_dsn(uri),
            size=pool.read_size,
            checkout_timeout=pool.connect_timeout,
            connect_args={
                "timeout": pool.connect_timeout,
                "command_timeout": pool.statement_timeout,
                "server_settings": server_settings,
            },
        )

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, before=self._read_pool.release_request_connection)

    def reading(self) -> Reading:
        """`async with database.reading() as connection:` an asyncpg connection for reads (autocommit, prepared
        statements): the request's one read connection, or one of its own outside a request. A database that
        cannot serve leaves the block as UnavailableError, as a unit of work does."""
        return self._read_pool.reading()

    async def read(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`query(connection)` as in `reading()`, run once more on a fresh connection if the first is lost under it
        (cut while idle in the pool, or while it ran): what every read that may be repeated should use."""
        return await self._read_pool.read(query)

    def transaction(self) -> Transaction:
        """`async with database.transaction() as connection:` one transaction on plain asyncpg, on a connection of
        its own: committed when the block ends, rolled back when it raises (read_pool.Transaction)."""
        return self._read_pool.transaction()

    def connection(self) -> Reading:
        """`async with database.connection() as connection:` a pooled asyncpg connection for this block alone, in
        autocommit (each statement its own transaction): for single writes that must not hold a request's read
        connection while the request goes on to call a provider."""
        return self._read_pool.own_connection()

    def request_reads(self) -> RequestReads:
        """Begin a request's reads (the HTTP layer, as a request starts); `await reads.end()` as it ends."""
        return self._read_pool.request()

    @asynccontextmanager
    async def dedicated_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own, outside the pools, closed when the block ends: for what holds session state
        (a job's advisory lock, which the database releases if the process dies; a LISTEN)."""
        try:
            connection = await self._read_pool.connect()
        except Exception as error:
            leave_block(error, None)
            raise
        try:
            yield connection
        finally:
            await connection.close()

    def read_connections_in_use(self) -> int:
        return self._read_pool.in_use()

    async def initialize(self) -> None:
        """Open the read pool and a few of its connections, so the first requests do not pay for them; an
        unreachable database is logged, not fatal: the service starts and reports itself not ready until the
        database answers."""
        await self._read_pool.open()
        results = await asyncio.gather(*(self._touch() for _ in range(self._warm_connections)), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            _log.warning("database not reachable at start", error=type(failures[0]).__name__)

    async def _touch(self) -> None:
        async with self.reading() as connection:
            await connection.execute("SELECT 1")

    async def schema_revision(self) -> str | None:
        """The migration the database is at; None when it has never been migrated."""
        try:
            async with self.reads.connect() as connection:
                result = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return result.scalar_one_or_none()
        except ProgrammingError:
            return None

    async def dispose(self) -> None:
        await self._read_pool.close()
        await self.engine.dispose()


def driver_dsn(uri: str) -> str:
    """The URI as asyncpg itself takes it (`postgresql://`, without SQLAlchemy's driver name)."""
    return make_url(async_url(uri)).set(drivername="postgresql").render_as_string(hide_password=False)


__all__ = ["AsyncSession", "Database", "PoolSettings", "async_url"]

"""The Database facade: one engine and its pool, units of work for writes, cheap autocommit reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import make_url, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.src.database.failures import as_unavailable, leave_block
from app.src.database.unit_of_work import UnitOfWork
from app.src.utils.logs import module_logger

_log = module_logger("database")


def async_url(uri: str) -> str:
    """Any PostgreSQL URI (libpq style, `postgres://`, or SQLAlchemy's) as SQLAlchemy's asyncpg URL."""
    url = make_url(uri.replace("postgres://", "postgresql://", 1) if uri.startswith("postgres://") else uri)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the database URI must be a postgresql:// URI")
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    size: int = 10
    connect_timeout: float = 5.0
    statement_timeout: float = 15.0


class Database:
    def __init__(self, uri: str, pool: PoolSettings | None = None) -> None:
        pool = pool or PoolSettings()
        self._warm_connections = min(pool.size, 4)
        self.engine: AsyncEngine = create_async_engine(
            async_url(uri),
            pool_size=pool.size,
            max_overflow=0,
            pool_timeout=pool.connect_timeout,
            connect_args={
                "timeout": pool.connect_timeout,
                "command_timeout": pool.statement_timeout,
                "server_settings": {
                    "application_name": "proving-ground",
                    "statement_timeout": str(int(pool.statement_timeout * 1000)),
                },
            },
        )
        # Reads that need no transaction skip SQLAlchemy's BEGIN/ROLLBACK round trips.
        self.reads: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._sessions)

    def reading(self) -> Reading:
        """`async with database.reading() as connection:` an autocommit connection for reads; a database that
        cannot serve leaves the block as UnavailableError, as a unit of work does."""
        return Reading(self.reads)

    async def initialize(self) -> None:
        """Open a few pooled connections so the first requests do not pay for them; an unreachable database is
        logged, not fatal: the service starts and reports itself not ready until the database answers."""
        results = await asyncio.gather(*(self._touch() for _ in range(self._warm_connections)), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            _log.warning("database not reachable at start", error=type(failures[0]).__name__)

    async def _touch(self) -> None:
        async with self.reads.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        """The migration the database is at; None when it has never been migrated."""
        try:
            async with self.reads.connect() as connection:
                result = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return result.scalar_one_or_none()
        except ProgrammingError:
            return None

    async def dispose(self) -> None:
        await self.engine.dispose()


class Reading:
    __slots__ = ("_connection", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> AsyncConnection:
        try:
            self._connection = await self._engine.connect()
        except Exception as error:
            if (unavailable := as_unavailable(error)) is not None:
                raise unavailable from error
            raise
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        leave_block(exc, None if connection is None else await _close(connection))


async def _close(connection: AsyncConnection) -> Exception | None:
    try:
        await connection.close()
    except Exception as error:  # noqa: BLE001 - handed to leave_block, which decides what the caller sees
        return error
    return None


__all__ = ["AsyncSession", "Database", "PoolSettings", "async_url"]

"""Reads on plain asyncpg, the hot path of every authenticated request (`make bench-read` measures it).

Through SQLAlchemy's async engine a read cost ~220 µs of CPU before the database saw it (the greenlet bridge,
statement building, a transaction's BEGIN and ROLLBACK, the pool's reset on return); here it is a prepared
statement on a pooled connection (asyncpg keeps each statement prepared per connection), in autocommit, and the
connection goes back without a reset round trip: these connections only ever run single SELECTs, so there is no
session state to reset.

A request holds at most one read connection: the first read of a request takes it, its later reads use it, and it
goes back when the request ends, or as soon as the request starts to write (a unit of work), so that a request
that goes on to call a provider does not sit on a read connection while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

import asyncpg

from app.src.api.common.errors import UnavailableError
from app.src.database.failures import BUSY_RETRY_AFTER, connection_lost, leave_block


async def _keep_as_is(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to reset (no SET, LISTEN, lock or cursor is ever left behind)."""


class RequestReads:
    """The read connection of one request, if it has read yet."""

    __slots__ = ("_connection", "_pool", "_token")

    def __init__(self, pool: ReadPool) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = None
        self._token: Token[RequestReads | None] | None = None

    async def connection(self) -> asyncpg.Connection:
        if self._connection is None:
            self._connection = await self._pool.acquire()
        return self._connection

    async def give_back(self, *, lost: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.release(connection, lost=lost)

    async def end(self) -> None:
        """The request is over: give the connection back and leave the request's context."""
        if self._token is not None:
            _request_reads.reset(self._token)
            self._token = None
        await self.give_back()


T = TypeVar("T")
_request_reads: ContextVar[RequestReads | None] = ContextVar("request_reads", default=None)


class ReadPool:
    def __init__(self, dsn: str, *, size: int, checkout_timeout: float, connect_args: dict[str, Any]) -> None:
        self._dsn = dsn
        self._size = size
        self._checkout_timeout = checkout_timeout
        self._connect_args = connect_args
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool; no connection is opened yet (the database may still be starting)."""
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=self._size, reset=_keep_as_is, **self._connect_args
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def request(self) -> RequestReads:
        """Begin a request's reads: until `end()`, every `reading()` in this context uses one connection."""
        reads = RequestReads(self)
        reads._token = _request_reads.set(reads)
        return reads

    def reading(self) -> Reading:
        return Reading(self, _request_reads.get())

    def transaction(self) -> Transaction:
        return Transaction(self)

    def own_connection(self) -> Reading:
        """A connection of the pool for this block alone; the request's read connection goes back first (a
        request that writes goes on to call out, often: it must not sit on two connections meanwhile)."""
        return Reading(self, None, release_request_first=True)

    async def release_request_connection(self) -> None:
        """A unit of work begins: the request's read connection, if it holds one, goes back first."""
        reads = _request_reads.get()
        if reads is not None:
            await reads.give_back()

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool, for session state (a lock held while a job runs, LISTEN)."""
        connection: asyncpg.Connection = await asyncpg.connect(self._dsn, **self._connect_args)
        return connection

    def in_use(self) -> int:
        """Connections taken from the pool now (a gauge for /metrics)."""
        return 0 if self._pool is None else self._pool.get_size() - self._pool.get_idle_size()

    async def acquire(self) -> asyncpg.Connection:
        if self._pool is None:
            raise RuntimeError("the read pool is not open")
        try:
            connection: asyncpg.Connection = await self._pool.acquire(timeout=self._checkout_timeout)
        except TimeoutError:
            raise UnavailableError(
                "Every database connection is in use; try again shortly.", BUSY_RETRY_AFTER, code="database-busy"
            ) from None
        return connection

    async def release(self, connection: asyncpg.Connection, *, broken: bool = False, lost: bool = False) -> None:
        """Back to the pool; a `broken` connection is closed first, so the pool opens a new one in its place. One
        the server `lost` (ended) has the pool's idle connections replaced as they are next taken too: what ended
        it (a restart, an operator's pg_terminate_backend) most likely ended them."""
        if broken or lost:
            with suppress(asyncpg.InterfaceError):  # closed and taken back by the pool already: nothing to end
                connection.terminate()
        if lost and self._pool is not None:
            await self._pool.expire_connections()
        if self._pool is not None:
            await self._pool.release(connection)

    async def read(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`query` on a read connection (the request's, as `reading()` gives); if that connection is lost under it
        (the server restarted, or ended it, while it sat idle or while `query` ran), `query` runs once more on a
        fresh one: a read may be repeated. A database that is really gone fails that second try too (503)."""
        try:
            async with self.reading() as connection:
                return await query(connection)
        except UnavailableError as error:
            if not connection_lost(error):
                raise
        async with self.reading() as connection:
            return await query(connection)


class Transaction:
    """`async with database.transaction() as connection:` one transaction on a pooled asyncpg connection of its
    own (never the request's read connection): committed when the block ends, rolled back when it raises. For the
    hot write paths (billing), where SQLAlchemy's unit of work costs more than the SQL it runs. A database that
    cannot serve leaves the block as UnavailableError; a connection whose block was cancelled mid-statement is
    closed rather than handed to the next caller in an unknown state."""

    __slots__ = ("_connection", "_pool", "_transaction")

    def __init__(self, pool: ReadPool) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = None
        self._transaction: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            await self._pool.release_request_connection()  # not held while the request goes on to write (and call out)
            self._connection = await self._pool.acquire()
            self._transaction = self._connection.transaction()
            await self._transaction.start()
        except BaseException as error:
            if self._connection is not None:
                await self._pool.release(self._connection, broken=True)
            leave_block(error if isinstance(error, Exception) else None, None)
            raise
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None  # noqa: S101 - __aenter__ succeeded
        ending: Exception | None = None
        broken = False
        try:
            if exc is None:
                await self._transaction.commit()
            else:
                await self._transaction.rollback()
        except Exception as error:  # noqa: BLE001 - decided below, with the block's own error
            ending, broken = error, True
        except BaseException:  # cancelled while committing: the connection's state is unknown
            await self._pool.release(connection, broken=True)
            raise
        lost = connection_lost(exc) or connection_lost(ending)
        await self._pool.release(connection, broken=broken or isinstance(exc, asyncio.CancelledError), lost=lost)
        leave_block(exc if isinstance(exc, Exception) else None, ending)


class Reading:
    """`async with database.reading() as connection:` the request's read connection (or one of its own outside a
    request); a database that cannot serve leaves the block as UnavailableError."""

    __slots__ = ("_connection", "_pool", "_reads", "_release_request_first")

    def __init__(self, pool: ReadPool, reads: RequestReads | None, *, release_request_first: bool = False) -> None:
        self._pool = pool
        self._reads = reads
        self._release_request_first = release_request_first
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            if self._release_request_first:
                await self._pool.release_request_connection()
            if self._reads is not None:
                return await self._reads.connection()
            self._connection = await self._pool.acquire()
        except Exception as error:
            leave_block(error, None)
            raise
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        lost = connection_lost(exc)
        if connection is not None:
            await self._pool.release(connection, lost=lost)
        elif exc is not None and self._reads is not None:
            await self._reads.give_back(lost=lost)  # a connection that failed is not kept for the next read
        leave_block(exc, None)

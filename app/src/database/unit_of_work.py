"""A unit of work owns one transaction: nothing is kept unless `commit()` is called."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.src.database.failures import leave_block

RepositoryT = TypeVar("RepositoryT")


class UnitOfWork:
    """`async with database.unit_of_work() as uow: ... await uow.commit()`; leaving without commit rolls back.
    A database that cannot serve (no free connection, unreachable, the connection lost) leaves the block as
    UnavailableError."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], before: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._sessions = sessions
        self._before = before  # run as the unit begins (the facade gives back the request's read connection)
        self._session: AsyncSession | None = None
        self._repositories: dict[Callable[[AsyncSession], Any], Any] = {}

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is used outside its `async with` block")
        return self._session

    def repository(self, factory: Callable[[AsyncSession], RepositoryT]) -> RepositoryT:
        """The repository built by `factory` on this unit's session; built once per unit of work."""
        repository = self._repositories.get(factory)
        if repository is None:
            repository = self._repositories[factory] = factory(self.session)
        return repository

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()

    async def __aenter__(self) -> UnitOfWork:
        if self._before is not None:
            await self._before()
        self._session = self._sessions()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self.session, None
        self._repositories.clear()
        leave_block(exc, await _end(session))


async def _end(session: AsyncSession) -> Exception | None:
    """Roll back what was not committed and give the connection back; what went wrong doing so, if anything."""
    try:
        try:
            await session.rollback()
        finally:
            await session.close()
    except Exception as error:  # noqa: BLE001 - returned to __aexit__, which decides what the caller sees
        return error
    return None

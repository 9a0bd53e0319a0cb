"""The catalog in memory, in every API process: warmed when the process starts, refreshed when a sync commits.

A sync's transaction NOTIFYs `catalog_changed`; each process LISTENs on a connection of its own and reloads on it.
It also looks at the version row every CATALOG_POLL_SECONDS, so a notification lost with a dropped connection only
delays a refresh. Besides the current version, the versions a listing's cursor may still page through (from the
state's `oldest_kept` on) are kept, loaded from the database when a cursor asks for one this process has not seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from app.src.api.catalog.snapshot import Snapshot
from app.src.api.common.errors import GoneError, UnavailableError
from app.src.database import catalog
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

NOT_SYNCED_RETRY_AFTER = 5
MAX_FOLLOW_BACKOFF = 30.0
_log = module_logger("catalog")


class CatalogMirror:
    def __init__(self, database: Database, poll_seconds: float) -> None:
        self._database = database
        self._poll_seconds = poll_seconds
        self._current: Snapshot | None = None
        self._synced_at: dt.datetime | None = None
        self._oldest_kept = 0
        self._older: OrderedDict[int, Snapshot] = OrderedDict()
        self._loading: dict[int, asyncio.Task[Snapshot | None]] = {}
        self._wake = asyncio.Event()
        self._refreshing = asyncio.Lock()

    def _gauges(self, registry: CollectorRegistry) -> list[Gauge]:
        version = Gauge("catalog_version", "The catalog version this process serves", registry=registry)
        version.set_function(lambda: 0 if self._current is None else self._current.version)
        items = Gauge("catalog_items", "Items in the catalog version this process serves", registry=registry)
        items.set_function(lambda: 0 if self._current is None else len(self._current))
        age = Gauge("catalog_age_seconds", "Seconds since the last good sync this process knows of", registry=registry)
        age.set_function(lambda: float("nan") if self._synced_at is None else self.age_seconds())
        return [version, items, age]

    @asynccontextmanager
    async def follow(self, registry: CollectorRegistry) -> AsyncIterator[None]:
        """Warm the mirror (a database that does not answer yet is logged, and followed until it does), then keep
        it current until the block ends; its gauges are in `registry` meanwhile."""
        gauges = self._gauges(registry)
        try:
            async with self._database.dedicated_connection() as connection:
                await self.refresh(connection)
        except Exception as error:  # noqa: BLE001 - the follower below tries again; the process serves meanwhile
            _log.warning("catalog not loaded at start", error=type(error).__name__)
        follower = asyncio.create_task(self._follow(), name="catalog-follower")
        try:
            yield
        finally:
            follower.cancel()
            with suppress(asyncio.CancelledError):
                await follower
            for gauge in gauges:
                registry.unregister(gauge)

    def current(self) -> Snapshot:
        if self._current is None or self._synced_at is None:
            raise UnavailableError(
                "The catalog has not been mirrored from its provider yet; try again shortly.",
                NOT_SYNCED_RETRY_AFTER,
                code="catalog-not-synced",
            )
        return self._current

    @property
    def synced_at(self) -> dt.datetime:
        if self._synced_at is None:
            self.current()  # raises
        assert self._synced_at is not None  # noqa: S101 - current() raised otherwise
        return self._synced_at

    def age_seconds(self) -> int:
        return max(0, int(dt.datetime.now(dt.UTC).timestamp() - self.synced_at.timestamp()))

    async def at(self, version: int) -> Snapshot:
        """The snapshot of `version`, for a listing that started on it; GoneError once it is no longer kept."""
        current = self.current()
        if version == current.version:
            return current
        if version < self._oldest_kept:
            raise _gone(version)
        if (kept := self._older.get(version)) is not None:
            self._older.move_to_end(version)
            return kept
        loaded = await self._load(version)
        if loaded is None:
            raise _gone(version)
        return loaded

    async def refresh(self, connection: asyncpg.Connection) -> None:
        """Read the state; load the current version if it is not the one in memory. On a connection of the
        mirror's own: the read pool's connections only ever run single statements (they are not reset)."""
        async with self._refreshing:
            state = await catalog.state(connection)
            loaded = None
            if self._current is None or state.version != self._current.version:
                state, products = await catalog.current(connection)
                loaded = Snapshot(state.version, products)
            self._adopt(state, loaded)

    def _adopt(self, state: catalog.State, loaded: Snapshot | None) -> None:
        """The state read, and the version `loaded` for it, made what this process serves in one step (no await):
        a request never sees a new version beside the bounds of the one before."""
        self._synced_at = state.synced_at
        self._oldest_kept = max(self._oldest_kept, state.oldest_kept)  # it only grows; a read may have seen later
        if loaded is not None:
            previous, self._current = self._current, loaded
            if previous is not None and previous.version != loaded.version:
                self._keep(previous)
            _log.info("catalog loaded", version=loaded.version, items=len(loaded))
        for version in [version for version in self._older if version < self._oldest_kept]:
            del self._older[version]

    def _keep(self, snapshot: Snapshot) -> None:
        self._older[snapshot.version] = snapshot
        self._older.move_to_end(snapshot.version)
        current = 0 if self._current is None else self._current.version
        while len(self._older) > max(1, current - self._oldest_kept):
            self._older.popitem(last=False)

    async def _load(self, version: int) -> Snapshot | None:
        """One load per version however many requests ask at once; shielded, so a request that leaves does not
        cancel it for the others."""
        task = self._loading.get(version)
        if task is None:
            task = asyncio.create_task(self._read(version))
            self._loading[version] = task
            task.add_done_callback(lambda _: self._loading.pop(version, None))
        return await asyncio.shield(task)

    async def _read(self, version: int) -> Snapshot | None:
        async with self._database.dedicated_connection() as connection:
            loaded = await catalog.at_version(connection, version)
        if loaded is None:
            return None
        state, products = loaded
        snapshot = Snapshot(version, products)
        if self._current is None or version != self._current.version:
            self._oldest_kept = max(self._oldest_kept, state.oldest_kept)
            self._keep(snapshot)
        return snapshot

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                async with self._database.dedicated_connection() as connection:
                    await connection.add_listener(catalog.CHANGED_CHANNEL, self._notified)
                    failures = 0
                    while not connection.is_closed():
                        self._wake.clear()
                        await self.refresh(connection)
                        with suppress(TimeoutError):
                            async with asyncio.timeout(self._poll_seconds):
                                await self._wake.wait()
            except Exception as error:  # noqa: BLE001 - the follower outlives any failure; it logs and tries again
                failures += 1
                _log.warning("catalog follower lost its connection", error=type(error).__name__, failures=failures)
                await asyncio.sleep(min(MAX_FOLLOW_BACKOFF, self._poll_seconds * failures))

    def _notified(self, *_: Any) -> None:
        self._wake.set()


def _gone(version: int) -> GoneError:
    return GoneError(
        f"This listing read catalog version {version}, which is no longer kept: start the listing again.",
        code="catalog-version-gone",
    )

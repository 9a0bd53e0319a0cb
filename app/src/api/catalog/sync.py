"""The `catalog_sync` job: the provider's whole feed read, then applied to the mirror in one transaction.

Reading comes first and writes nothing: a sync that fails or is killed part way (the provider down, a malformed
page, the worker gone) leaves the mirror as the last good sync left it, and the API keeps serving that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.src.api.catalog.feed import read_feed
from app.src.database import catalog
from app.src.resilience.client import ProviderClient
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

_log = module_logger("catalog")


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    page_size: int = 100
    max_pages: int = 1000
    versions_kept: int = 3  # versions a listing's cursor can still page through: the current one and older


class CatalogSync:
    def __init__(self, database: Database, provider: ProviderClient, policy: SyncPolicy) -> None:
        self._database = database
        self._provider = provider
        self._policy = policy

    async def run(self) -> catalog.Applied:
        async with self._database.dedicated_connection() as connection:
            known = await catalog.known_pages(connection)
            feed = await read_feed(self._provider, known, self._policy.page_size, self._policy.max_pages)
            applied = await catalog.apply(
                connection, feed.products, feed.unchanged, feed.pages, self._policy.versions_kept
            )
        _log.info(
            "catalog synced", version=applied.version, added=applied.added, changed=applied.changed,
            removed=applied.removed, pages=len(feed.pages), not_modified=feed.not_modified,
        )  # fmt: skip
        return applied

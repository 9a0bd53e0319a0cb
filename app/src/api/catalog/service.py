"""The catalog's reads: listings and single items from the mirror in memory, each with a tag that changes when
what it shows does (for ETags), and how old the mirror is."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.src.api.catalog.listing import Cursor, Listing, SortKey, decode_cursor, encode_cursor
from app.src.api.catalog.mirror import CatalogMirror
from app.src.api.catalog.models import ItemAnswer, ItemPage
from app.src.api.catalog.snapshot import Entry, Snapshot
from app.src.api.common.errors import FieldProblem, InvalidParametersError, NotFoundError


@dataclass(frozen=True, slots=True)
class ListingView:
    """A page of a listing, resolved to its catalog version; made into a body only when it must be sent."""

    tag: str
    listing: Listing
    snapshot: Snapshot
    after: SortKey | None
    limit: int
    mirror: CatalogMirror

    def page(self) -> ItemPage:
        entries, last = self.snapshot.page(self.listing, self.after, self.limit)
        next_cursor = None
        if last is not None:
            next_cursor = encode_cursor(Cursor(self.snapshot.version, self.listing.fingerprint(), last))
        return ItemPage(
            items=[entry.item for entry in entries],
            next_cursor=next_cursor,
            version=self.snapshot.version,
            synced_at=self.mirror.synced_at,
            age_seconds=self.mirror.age_seconds(),
        )


@dataclass(frozen=True, slots=True)
class ItemView:
    tag: str
    entry: Entry
    mirror: CatalogMirror

    def answer(self) -> ItemAnswer:
        return ItemAnswer(item=self.entry.item, synced_at=self.mirror.synced_at, age_seconds=self.mirror.age_seconds())


class CatalogService:
    def __init__(self, mirror: CatalogMirror) -> None:
        self.mirror = mirror

    async def listing(self, listing: Listing, limit: int, cursor: str | None) -> ListingView:
        if listing.min_price is not None and listing.max_price is not None and listing.min_price > listing.max_price:
            detail = "min_price must not be above max_price."
            raise InvalidParametersError(detail, [FieldProblem(("min_price",), detail, "range")])
        if cursor is None:
            snapshot, after = self.mirror.current(), None
        else:
            parsed = decode_cursor(cursor, listing)
            snapshot, after = await self.mirror.at(parsed.version), parsed.after
        asked = hashlib.blake2b(f"{listing.fingerprint()}|{limit}|{cursor or ''}".encode(), digest_size=6)
        tag = f"{snapshot.version}.{snapshot.digest}.{asked.hexdigest()}"
        return ListingView(tag, listing, snapshot, after, limit, self.mirror)

    def item(self, item_id: str) -> ItemView:
        entry = self.mirror.current().by_id.get(item_id)
        if entry is None:
            raise NotFoundError("No item has this id in the catalog.", code="no-such-item")
        return ItemView(entry.tag, entry, self.mirror)

    def age_seconds(self) -> int:
        return self.mirror.age_seconds()

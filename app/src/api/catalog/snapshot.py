"""One catalog version in memory: its items by id, and in each order a listing can ask for, ready to page."""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from app.src.api.catalog.listing import Listing, SortKey
from app.src.api.catalog.models import CatalogItem
from app.src.database.catalog import Product


@dataclass(frozen=True, slots=True)
class Entry:
    item: CatalogItem
    folded_name: str
    tag: str  # changes when the item does

    def admitted_by(self, listing: Listing, folded_q: str | None) -> bool:
        price = self.item.price
        return (
            (folded_q is None or folded_q in self.folded_name)
            and (listing.min_price is None or price >= listing.min_price)
            and (listing.max_price is None or price <= listing.max_price)
        )


@dataclass(frozen=True, slots=True)
class _Order:
    entries: list[Entry]
    keys: list[SortKey]


def _entry(product: Product) -> Entry:
    item = CatalogItem(
        id=product.id, name=product.name, price=product.price, currency=product.currency,
        updated_at=product.updated_at,
    )  # fmt: skip
    tag = hashlib.blake2b(item.model_dump_json().encode(), digest_size=9).hexdigest()
    return Entry(item, product.name.casefold(), tag)


class Snapshot:
    def __init__(self, version: int, products: Iterable[Product]) -> None:
        self.version = version
        entries = [_entry(product) for product in products]
        self.by_id = {entry.item.id: entry for entry in entries}
        by_name = sorted(entries, key=lambda entry: (entry.folded_name, entry.item.id))
        by_price = sorted(entries, key=lambda entry: (entry.item.price, entry.item.id))
        self._by_name = _Order(by_name, [(entry.folded_name, entry.item.id) for entry in by_name])
        self._by_price = _Order(by_price, [(entry.item.price, entry.item.id) for entry in by_price])
        digest = hashlib.blake2b(digest_size=6)
        for entry in by_name:
            digest.update(entry.tag.encode())
        self.digest = digest.hexdigest()  # tells apart two versions that share a number (a database rebuilt)

    def __len__(self) -> int:
        return len(self.by_id)

    def page(self, listing: Listing, after: SortKey | None, limit: int) -> tuple[list[Entry], SortKey | None]:
        """Up to `limit` items of the listing after `after` (its sort key), and the key to continue from, or None
        when no item is left."""
        order = self._by_price if listing.by_price else self._by_name
        low, high = 0, len(order.keys)
        if listing.by_price and listing.min_price is not None:
            low = bisect_left(order.keys, (listing.min_price, ""))
        if listing.by_price and listing.max_price is not None:
            high = bisect_left(order.keys, (listing.max_price + 1, ""))
        if after is not None and listing.descending:
            high = min(high, bisect_left(order.keys, after))
        elif after is not None:
            low = max(low, bisect_right(order.keys, after))
        positions = range(high - 1, low - 1, -1) if listing.descending else range(low, high)
        folded_q, found = listing.folded_q, []
        for position in positions:
            entry = order.entries[position]
            if entry.admitted_by(listing, folded_q):
                found.append(entry)
                if len(found) > limit:
                    break
        if len(found) <= limit:
            return found, None
        return found[:limit], _key(found[limit - 1], listing)


def _key(entry: Entry, listing: Listing) -> SortKey:
    return (entry.item.price, entry.item.id) if listing.by_price else (entry.folded_name, entry.item.id)

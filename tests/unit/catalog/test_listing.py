"""Keyset paging over one catalog version: whatever the filters, order and page sizes, following the cursors gives
each matching item once, in order; a cursor is bound to its listing."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.src.api.catalog.listing import Cursor, Listing, decode_cursor, encode_cursor
from app.src.api.catalog.snapshot import Snapshot
from app.src.api.common.errors import InvalidParametersError
from app.src.database.catalog import Product

WHEN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
products = st.lists(
    st.builds(
        Product,
        id=st.from_regex(r"p_[a-c0-9]{1,3}", fullmatch=True),
        name=st.sampled_from(["Lamp", "lamp", "Brass Lamp", "Desk", "desk lamp", "Ärmel", "Zebra"]),
        price=st.integers(1, 50),
        currency=st.just("eur"),
        updated_at=st.just(WHEN),
    ),
    max_size=40,
    unique_by=lambda product: product.id,
)
listings = st.builds(
    Listing,
    sort=st.sampled_from(["name", "-name", "price", "-price"]),
    q=st.none() | st.sampled_from(["lamp", "LAMP", "es", "ärm", "x"]),
    min_price=st.none() | st.integers(0, 50),
    max_price=st.none() | st.integers(0, 50),
)


def expected(items: list[Product], listing: Listing) -> list[str]:
    chosen = [
        product for product in items
        if (listing.q is None or listing.q.casefold() in product.name.casefold())
        and (listing.min_price is None or product.price >= listing.min_price)
        and (listing.max_price is None or product.price <= listing.max_price)
    ]  # fmt: skip
    if listing.by_price:
        chosen.sort(key=lambda product: (product.price, product.id), reverse=listing.descending)
    else:
        chosen.sort(key=lambda product: (product.name.casefold(), product.id), reverse=listing.descending)
    return [product.id for product in chosen]


@given(products, listings, st.lists(st.integers(1, 7), min_size=1, max_size=5))
def test_following_the_cursors_gives_every_matching_item_once_in_order(
    items: list[Product], listing: Listing, limits: list[int]
) -> None:
    snapshot = Snapshot(3, items)
    seen: list[str] = []
    after = None
    for turn in range(100):
        limit = limits[turn % len(limits)]
        page, after_key = snapshot.page(listing, after, limit)
        assert len(page) <= limit
        seen.extend(entry.item.id for entry in page)
        if after_key is None:
            break
        cursor = decode_cursor(encode_cursor(Cursor(3, listing.fingerprint(), after_key)), listing)
        after = cursor.after
    assert seen == expected(items, listing)


def test_a_cursor_is_refused_for_another_listing_or_when_it_is_not_ours() -> None:
    by_name, by_price = Listing(sort="name"), Listing(sort="price")
    cursor = encode_cursor(Cursor(1, by_name.fingerprint(), ("lamp", "p_1")))
    assert decode_cursor(cursor, by_name).after == ("lamp", "p_1")
    for text, listing in ((cursor, by_price), (cursor, Listing(sort="name", q="lamp")), ("bm90LWpzb24", by_name),
                          (encode_cursor(Cursor(1, by_price.fingerprint(), ("lamp", "p_1"))), by_price)):  # fmt: skip
        with pytest.raises(InvalidParametersError) as refused:
            decode_cursor(text, listing)
        assert refused.value.problems[0].location == ("cursor",)

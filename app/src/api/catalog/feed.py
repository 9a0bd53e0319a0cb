"""The catalog provider's product feed (`GET /v1/products`, cursor-paged, ETag per page), read whole for a sync.

A page the provider answers 304 for (its ETag matched the one we kept) holds the products we have already: the sync
takes them from the page as it was kept. What the provider sends is validated as strictly as a request: a product
that breaks the rules fails the sync, and the last good data keeps being served.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.src.api.common.providers import ProviderError
from app.src.database.catalog import Page, Product
from app.src.resilience.client import ProviderClient

LATEST_UPDATE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC).timestamp()


class FeedProduct(BaseModel):
    # extra fields are ignored: a provider adds fields without asking, and we mirror only these
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    price: int = Field(gt=0, le=10**12)
    currency: str = Field(pattern=r"^[a-z]{3}$")
    updated_at: int = Field(ge=0, lt=LATEST_UPDATE)

    def product(self) -> Product:
        updated_at = dt.datetime.fromtimestamp(self.updated_at, dt.UTC)
        return Product(self.id, self.name, self.price, self.currency, updated_at)


class FeedPage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    data: list[FeedProduct] = Field(max_length=1000)
    next_cursor: str | None = Field(max_length=1024)


class FeedError(ProviderError):
    """The feed answered, but not as its contract says (a malformed page, no ETag, too many pages)."""


@dataclass(slots=True)
class Feed:
    """The whole feed as one sync read it."""

    pages: list[Page] = field(default_factory=list)
    products: dict[str, Product] = field(default_factory=dict)  # from pages that came with a body
    unchanged: set[str] = field(default_factory=set)  # ids on pages that answered 304
    not_modified: int = 0  # pages that answered 304


async def read_feed(catalog: ProviderClient, known: dict[int, Page], page_size: int, max_pages: int) -> Feed:
    """Every page, in order, each asked with the ETag we kept for it when it is the same request as then."""
    feed, cursor = Feed(), None
    for position in range(max_pages):
        before = known.get(position)
        conditional = before is not None and before.cursor == cursor and before.etag != ""
        headers = {"If-None-Match": before.etag} if before is not None and conditional else {}
        query = {"limit": page_size} | ({} if cursor is None else {"cursor": cursor})
        response = await catalog.request("GET", f"/v1/products?{urlencode(query)}", headers=headers)
        if response.status == 304 and before is not None and conditional:
            page = before
            feed.unchanged.update(page.item_ids)
            feed.not_modified += 1
        elif response.status == 200:
            parsed = _parsed(catalog.name, response.body)
            ids = tuple(product.id for product in parsed.data)
            page = Page(position, cursor, response.headers.get("ETag", ""), parsed.next_cursor, ids)
            feed.products.update((product.id, product.product()) for product in parsed.data)
        else:
            raise FeedError(catalog.name, f"the feed answered {response.status} to a page request")
        feed.pages.append(page)
        if page.next_cursor is None:
            return feed
        cursor = page.next_cursor
    raise FeedError(catalog.name, f"the feed has more than CATALOG_MAX_PAGES ({max_pages}) pages")


def _parsed(provider: str, body: bytes) -> FeedPage:
    try:
        return FeedPage.model_validate_json(body)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = "/".join(str(part) for part in first["loc"])
        raise FeedError(provider, f"a feed page breaks the contract at {where}: {first['msg']}") from None

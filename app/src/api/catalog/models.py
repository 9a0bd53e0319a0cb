"""What the catalog API answers: items as mirrored, and how old the mirror is."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from app.src.api.common.models.base import StrictModel


class CatalogItem(StrictModel):
    id: str
    name: str
    price: int = Field(description="In the currency's minor unit (cents for eur)")
    currency: str = Field(description="ISO 4217, lower case")
    updated_at: dt.datetime = Field(description="When the provider last changed it")


class Freshness(StrictModel):
    synced_at: dt.datetime = Field(description="When the last good sync with the provider finished")
    age_seconds: int = Field(ge=0, description="Seconds since then, as the Catalog-Age header says too")


class ItemPage(Freshness):
    items: list[CatalogItem]
    next_cursor: str | None = Field(description="The next page of this listing, from the same catalog version")
    version: int = Field(description="The catalog version this listing reads, from its first page to its last")


class ItemAnswer(Freshness):
    item: CatalogItem

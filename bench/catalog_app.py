"""The floor of `make bench-catalog`: a minimal Quart + quart-schema app answering the catalog's two routes with a
fixed page of items (and a fixed item) of the same shape, validated and serialised by quart-schema."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from quart import Quart
from quart_schema import QuartSchema, validate_response

app = Quart(__name__)
QuartSchema(app)


class Item(BaseModel):
    id: str
    name: str
    price: int
    currency: str
    updated_at: dt.datetime


class Page(BaseModel):
    items: list[Item]
    next_cursor: str | None
    version: int
    synced_at: dt.datetime
    age_seconds: int


class One(BaseModel):
    item: Item
    synced_at: dt.datetime
    age_seconds: int


NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
ITEMS = [Item(id=f"prod_{n:06d}", name=f"Brass Lamp {n}", price=1000 + n, currency="eur", updated_at=NOW)
         for n in range(1, 21)]  # fmt: skip
PAGE = Page(items=ITEMS, next_cursor="WzEsImFiYyIsWyJicmFzcyBsYW1wIDIwIiwicHJvZF8wMDAwMjAiXV0", version=1,
            synced_at=NOW, age_seconds=3)  # fmt: skip
ONE = One(item=ITEMS[0], synced_at=NOW, age_seconds=3)


@app.get("/api/catalog/items")
@validate_response(Page)
async def items() -> Page:
    return PAGE


@app.get("/api/catalog/items/<item_id>")
@validate_response(One)
async def item(item_id: str) -> One:
    return ONE

"""A supplier's product feed: cursor-paged, ETag / If-None-Match, and products that change as time passes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request

from simulators.engine.config import SimulatorConfig
from simulators.engine.control import ScopeQuery
from simulators.engine.idempotency import stripe_error
from simulators.engine.simulator import Simulator, parse, parse_control

MAX_TICKS_PER_CATCH_UP = 10_000
ADJECTIVES = ("Brass", "Cedar", "Linen", "Slate", "Amber", "Cobalt", "Walnut", "Ivory")
NOUNS = ("Lamp", "Chair", "Kettle", "Desk", "Vase", "Rug", "Clock", "Shelf")


class CatalogConfig(SimulatorConfig):
    initial_products: int = Field(default=50, ge=0, le=100_000)
    change_every_seconds: float = Field(default=60.0, ge=0, description="0: products change only through /__sim/.")
    changes_per_tick: int = Field(default=3, ge=0, le=1000)


class Product(BaseModel):
    id: str
    name: str
    price: int = Field(gt=0)
    currency: str = Field(pattern=r"^[a-z]{3}$")
    updated_at: int


class ProductChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    price: int = Field(gt=0)
    currency: str = Field(default="eur", pattern=r"^[a-z]{3}$")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


@dataclass
class Feed:
    rng: random.Random
    epoch: float
    products: dict[str, Product] = field(default_factory=dict)
    ticks_applied: int = 0
    next_number: int = 1

    def add(self, now: float) -> Product:
        product = Product(
            id=f"prod_{self.next_number:06d}",
            name=f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)}",
            price=self.rng.randrange(500, 50_000, 5),
            currency="eur",
            updated_at=int(now),
        )
        self.next_number += 1
        self.products[product.id] = product
        return product

    def change(self, now: float) -> None:
        roll = self.rng.random()
        if roll < 0.4 or not self.products:
            self.add(now)
        elif roll < 0.8:
            product = self.products[self.rng.choice(sorted(self.products))]
            factor = self.rng.choice((0.9, 0.95, 1.05, 1.1))
            self.products[product.id] = product.model_copy(
                update={"price": max(1, round(product.price * factor)), "updated_at": int(now)}
            )
        else:
            del self.products[self.rng.choice(sorted(self.products))]

    def catch_up(self, now: float, every: float, per_tick: int) -> None:
        """Apply the changes of every tick of `every` seconds that has passed since the feed began."""
        if every <= 0:
            return
        due = math.floor((now - self.epoch) / every)
        for _ in range(min(due - self.ticks_applied, MAX_TICKS_PER_CATCH_UP)):
            self.ticks_applied += 1
            for _ in range(per_tick):
                self.change(now)
        self.ticks_applied = max(self.ticks_applied, due)


def _cursor(product_id: str) -> str:
    return base64.urlsafe_b64encode(product_id.encode()).decode().rstrip("=")


def _after(cursor: str) -> str | None:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _conditional(body: dict[str, object]) -> Response:
    payload = json.dumps(body, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(payload).hexdigest()[:20] + '"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return Response(b"", status=304, headers={"ETag": etag})
    return Response(payload, content_type="application/json", headers={"ETag": etag})


class CatalogSimulator(Simulator[CatalogConfig]):
    name = "catalog"
    config_model = CatalogConfig

    def __init__(self, config: CatalogConfig) -> None:
        super().__init__(config)
        self._feeds: dict[str | None, Feed] = {}

    def feed(self, scope: str | None) -> Feed:
        now = self.engine.clock.now(scope)
        feed = self._feeds.get(scope)
        if feed is None:
            feed = Feed(random.Random(f"{self.config.seed}:{scope or ''}:catalog"), epoch=now)  # noqa: S311
            for _ in range(self.config.initial_products):
                feed.add(now)
            self._feeds[scope] = feed
        feed.catch_up(now, self.config.change_every_seconds, self.config.changes_per_tick)
        return feed

    def reset_state(self, scope: str | None) -> None:
        if scope is None:
            self._feeds.clear()
        else:
            self._feeds.pop(scope, None)

    def reconfigure(self, config: CatalogConfig) -> None:
        super().reconfigure(config)
        self._feeds.clear()

    def routes(self) -> Blueprint:
        blueprint = Blueprint("catalog", __name__)

        @blueprint.before_request
        async def authenticate() -> Response | None:
            if self.authorized():
                return None
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided.")

        @blueprint.get("/v1/products")
        async def list_products() -> Response:
            query = parse(PageQuery, request.args.to_dict())
            ordered = sorted(self.feed(request.headers.get("X-Sim-Scope")).products.values(), key=lambda p: p.id)
            if query.cursor is not None:
                after = _after(query.cursor)
                if after is None:
                    return stripe_error(400, "invalid_request_error", "The cursor is not one this feed gave.")
                ordered = [product for product in ordered if product.id > after]
            page = ordered[: query.limit]
            more = len(ordered) > len(page)
            return _conditional(
                {
                    "data": [product.model_dump() for product in page],
                    "next_cursor": _cursor(page[-1].id) if more else None,
                }
            )

        @blueprint.get("/v1/products/<product_id>")
        async def get_product(product_id: str) -> Response:
            product = self.feed(request.headers.get("X-Sim-Scope")).products.get(product_id)
            if product is None:
                return stripe_error(404, "invalid_request_error", f"No such product: '{product_id}'")
            return _conditional(product.model_dump())

        return blueprint

    def controls(self) -> Blueprint:
        blueprint = Blueprint("catalog_control", __name__)

        @blueprint.put("/catalog/products/<product_id>")
        async def upsert(product_id: str) -> Response:
            scope = parse_control(ScopeQuery, request.args.to_dict()).scope
            change = parse_control(ProductChange, await request.get_json(force=True, silent=True) or {})
            product = Product(id=product_id, updated_at=int(self.engine.clock.now(scope)), **change.model_dump())
            self.feed(scope).products[product_id] = product
            return Response(product.model_dump_json(), content_type="application/json")

        @blueprint.delete("/catalog/products/<product_id>")
        async def remove(product_id: str) -> tuple[str, int]:
            scope = parse_control(ScopeQuery, request.args.to_dict()).scope
            self.feed(scope).products.pop(product_id, None)
            return "", 204

        return blueprint

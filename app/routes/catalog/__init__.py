"""/api/catalog: public reads (no bearer token; X-Client-Id and its limits apply) of the mirrored catalog.

Every answer says how old the mirror is (`Catalog-Age`, and `age_seconds` with `synced_at` in the body) and carries a
weak ETag: the age moves every second, what the items are does not. `If-None-Match` with it answers 304.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from quart import Blueprint, Response
from quart_schema import document_response, validate_querystring

from app.http.authentication import public
from app.http.conditional import answer, conditional
from app.http.services import services
from app.src.api.catalog.listing import Listing
from app.src.api.catalog.models import ItemAnswer, ItemPage
from app.src.api.catalog.service import CatalogService
from app.src.api.common.models.base import StrictModel

blueprint = Blueprint("catalog", __name__)

MAX_PAGE = 100


class CatalogQuery(StrictModel):
    model_config = ConfigDict(strict=False)  # query strings are text: "20" is a number here

    q: str | None = Field(default=None, min_length=1, max_length=100, description="In the name, whatever the case")
    min_price: Annotated[int, Field(ge=0, le=10**12)] | None = None
    max_price: Annotated[int, Field(ge=0, le=10**12)] | None = None
    sort: Literal["name", "-name", "price", "-price"] = "name"
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$",
        description="next_cursor of the previous page; the filters and sort must be the same",
    )  # fmt: skip

    def listing(self) -> Listing:
        return Listing(sort=self.sort, q=self.q, min_price=self.min_price, max_price=self.max_price)


AGE_HEADER = {
    "Catalog-Age": {
        "description": "Seconds since the last good sync with the catalog provider",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def _catalog() -> CatalogService:
    return services().catalog


@blueprint.get("/items")
@public
@validate_querystring(CatalogQuery)
@document_response(ItemPage)
@conditional(AGE_HEADER)
async def list_items(query_args: CatalogQuery) -> Response:
    """A page of items, in one catalog version from the listing's first page to its last: follow `next_cursor`
    (with the same filters and sort) until it is null. 410 once that version is no longer kept."""
    catalog = _catalog()
    view = await catalog.listing(query_args.listing(), query_args.limit, query_args.cursor)
    return answer(view.tag, lambda: view.page().model_dump_json(), {"Catalog-Age": str(catalog.age_seconds())})


@blueprint.get("/items/<item_id>")
@public
@document_response(ItemAnswer)
@conditional(AGE_HEADER)
async def get_item(item_id: str) -> Response:
    catalog = _catalog()
    view = catalog.item(item_id)
    return answer(view.tag, lambda: view.answer().model_dump_json(), {"Catalog-Age": str(catalog.age_seconds())})

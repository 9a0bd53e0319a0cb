"""Routes that exist only in tests, to drive the error machinery that real routes rely on."""

from __future__ import annotations

from quart import Blueprint, Quart, g
from quart_schema import validate_querystring
from sqlalchemy import text
from werkzeug.exceptions import NotFound

from app.http.authentication import public
from app.http.problems import ProblemError
from app.http.services import services
from app.http.validation import responds, validate_body
from app.src.api.common.errors import AuthFailure, UnauthorizedError, UnavailableError
from app.src.api.common.models.base import StrictModel

PREFIX = "/api/probe"
SMALL_BODY_BYTES = 64
SECRET_IN_EXCEPTION = "SELECT password_hash FROM users WHERE email = 'victim@example.org'"


class Order(StrictModel):
    quantity: int
    note: str | None = None


blueprint = Blueprint("probe", __name__)


@blueprint.post("/orders")
@public
@validate_body(Order)
async def create_order(data: Order) -> tuple[dict[str, object], int]:
    return {"quantity": data.quantity, "note": data.note}, 201


@blueprint.post("/small-orders")
@public
@validate_body(Order, SMALL_BODY_BYTES)
async def create_small_order(data: Order) -> tuple[dict[str, object], int]:
    return {"quantity": data.quantity}, 201


@blueprint.get("/plain-problem")
@public
async def plain_problem() -> dict[str, str]:
    """A problem of the HTTP layer with no type and no title of its own, but headers and extensions."""
    raise ProblemError(409, "Plainly in conflict.", headers={"X-Probe": "yes"}, extensions={"hint": "wait"})


@blueprint.get("/wordless-404")
@public
async def wordless_404() -> dict[str, str]:
    raise NotFound(description="")


@blueprint.get("/unauthorized/<reason>")
@public
async def unauthorized(reason: str) -> dict[str, str]:
    raise UnauthorizedError("Who are you?", AuthFailure(reason))


class Page(StrictModel):
    limit: int = 10


@blueprint.get("/page")
@public
@validate_querystring(Page)
async def page(query_args: Page) -> dict[str, int]:
    return {"limit": query_args.limit}


@blueprint.get("/miswired")
@public
@responds(Order)
async def miswired() -> Order:
    return {"quantity": 1}  # type: ignore[return-value]


@blueprint.get("/boom")
@public
async def boom() -> dict[str, str]:
    raise RuntimeError(SECRET_IN_EXCEPTION)


@blueprint.get("/provider-down")
@public
async def provider_down() -> dict[str, str]:
    raise UnavailableError("The payments provider is not answering; try again shortly.", 30, code="provider-down")


@blueprint.get("/slow-read")
@public
async def slow_read() -> dict[str, str]:
    """A read that takes a second: long enough for a test to cut its connection while it runs."""
    await services().database.read(lambda connection: connection.execute("SELECT pg_sleep(1)"))
    return {"read": "done"}


@blueprint.get("/slow-write")
@public
async def slow_write() -> dict[str, str]:
    """The same inside a unit of work."""
    async with services().database.unit_of_work() as uow:
        await uow.session.execute(text("SELECT pg_sleep(1)"))
        await uow.commit()
    return {"write": "done"}


@blueprint.get("/whoami")
@public
async def whoami() -> dict[str, str | None]:
    return {"client_id": g.clientId}


def add_probe_routes(app: Quart) -> Quart:
    app.register_blueprint(blueprint, url_prefix=PREFIX)
    return app

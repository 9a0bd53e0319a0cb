"""Routes that exist only in tests, to drive the error machinery that real routes rely on."""

from __future__ import annotations

from quart import Blueprint, Quart, g
from sqlalchemy import text

from app.http.authentication import public
from app.http.services import services
from app.http.validation import responds, validate_body
from app.src.api.common.errors import UnavailableError
from app.src.api.common.models.base import StrictModel

PREFIX = "/api/probe"
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

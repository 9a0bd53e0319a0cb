"""Routes that exist only in tests, to drive the error machinery that real routes rely on."""

from __future__ import annotations

from quart import Blueprint, Quart, g

from app.authentication import public
from app.src.api.common.models.base import StrictModel
from app.validation import responds, validate_body

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


@blueprint.get("/whoami")
@public
async def whoami() -> dict[str, str | None]:
    return {"client_id": g.clientId}


def add_probe_routes(app: Quart) -> Quart:
    app.register_blueprint(blueprint, url_prefix=PREFIX)
    return app

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.src.api.common.models.base import StrictModel


class Health(StrictModel):
    status: Literal["ok"] = "ok"


class Readiness(StrictModel):
    status: Literal["ready"] = "ready"
    schema_revision: str = Field(description="The migration the database is at (the newest one).")


class Version(StrictModel):
    name: str
    version: str
    profile: str


class FieldError(StrictModel):
    pointer: str = Field(description="JSON Pointer to the failing field of the request body.")
    detail: str
    code: str


class Problem(StrictModel):
    """RFC 9457 problem details: the body of every error response."""

    model_config = StrictModel.model_config | {"extra": "allow"}

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None
    errors: list[FieldError] | None = None
    errors_omitted: int | None = Field(
        default=None, description="Failing fields not listed in `errors`, which lists only the first ones."
    )

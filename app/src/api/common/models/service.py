from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class Health(StrictModel):
    status: Literal["ok"] = "ok"


class Readiness(StrictModel):
    status: Literal["ready"] = "ready"
    schema_revision: str = Field(description="The migration the database is at (the newest one).")


class Version(StrictModel):
    name: str
    version: str
    profile: str

"""/links: what a person opens from a message, in a mail client or a browser (no X-Client-Id, no token)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from quart import Blueprint
from quart_schema import validate_querystring

from app.http.services import services
from app.http.validation import responds
from app.src.api.common.models.base import StrictModel

blueprint = Blueprint("links", __name__)


class VerificationLink(StrictModel):
    token: str = Field(min_length=1, max_length=2048)


class Verified(StrictModel):
    status: Literal["verified"] = "verified"
    detail: str = "Your address is confirmed: you can sign in now."


_VERIFIED = Verified()


@blueprint.get("/verify-email")
@validate_querystring(VerificationLink)
@responds(Verified)
async def verify_email(query_args: VerificationLink) -> Verified:
    """Confirms an account's address: once, within a day, and only the newest link sent to it."""
    await services().auth.verify_email(query_args.token)
    return _VERIFIED

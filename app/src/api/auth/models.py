"""The auth API's requests and answers."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from pydantic import Field

from app.src.api.common.models.base import StrictModel

Email = str


class RegisterRequest(StrictModel):
    email: Email = Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
    password: str = Field(
        min_length=8, max_length=128, description="Not one of the most common passwords, nor the e-mail address."
    )
    display_name: str = Field(min_length=1, max_length=100)


class Accepted(StrictModel):
    status: Literal["accepted"] = "accepted"
    detail: str


class LoginRequest(StrictModel):
    email: Email = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenPair(StrictModel):
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the token type, not a secret
    access_token: str
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Single use: every refresh returns a new one.")


class TotpChallenge(StrictModel):
    totp_required: Literal[True] = True
    challenge: str
    expires_in: int


SIX_DIGITS = r"^[0-9]{6}$"  # ASCII digits only: \d also matches fullwidth and Arabic-Indic digits


class TotpLoginRequest(StrictModel):
    challenge: str = Field(min_length=1, max_length=2048)
    code: str | None = Field(default=None, pattern=SIX_DIGITS)
    recovery_code: str | None = Field(default=None, max_length=64)


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class Me(StrictModel):
    id: int
    email: str
    display_name: str
    roles: list[str]
    totp_enabled: bool


class SessionInfo(StrictModel):
    id: UUID
    client_id: str
    created_at: dt.datetime
    last_used_at: dt.datetime
    current: bool


class Sessions(StrictModel):
    sessions: list[SessionInfo]


class PasswordChange(StrictModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(
        min_length=8, max_length=128, description="Not one of the most common passwords, nor the e-mail address."
    )


class TotpEnrolment(StrictModel):
    provisioning_uri: str
    secret: str = Field(description="The same secret, for typing into an authenticator by hand.")


class Reauthentication(StrictModel):
    password: str = Field(min_length=1, max_length=1024, description="The account's current password, again.")


class TotpCode(StrictModel):
    code: str = Field(pattern=SIX_DIGITS)
    password: str = Field(min_length=1, max_length=1024, description="The account's current password, again.")


class RecoveryCodes(StrictModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once instead of a TOTP code.")


class Done(StrictModel):
    status: Literal["done"] = "done"

"""/api/auth: transport only (parse, call the auth service, shape the response)."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, g
from quart_schema import document_response

from app.http.address_limits import address_limited
from app.http.authentication import public
from app.http.services import services
from app.http.validation import json_response, responds, validate_body
from app.src.api.auth.models import (
    Accepted,
    Done,
    LoginRequest,
    Me,
    PasswordChange,
    Reauthentication,
    RecoveryCodes,
    RefreshRequest,
    RegisterRequest,
    Sessions,
    TokenPair,
    TotpChallenge,
    TotpCode,
    TotpEnrolment,
    TotpLoginRequest,
)
from app.src.api.auth.service import AuthService, Profile

blueprint = Blueprint("auth", __name__)
SMALL_BODY = 16 * 1024  # every auth body fits in a few hundred bytes; parsing a megabyte of unknown keys costs 0.2 s
_DONE = Done()


def _service() -> AuthService:
    return services().auth


def _profile() -> Profile:
    profile: Profile = g.profile
    return profile


@blueprint.after_request
async def never_cache(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/register")
@public
@address_limited
@responds(Accepted, 202)
@validate_body(RegisterRequest, SMALL_BODY)
async def register(data: RegisterRequest) -> Accepted:
    """The same answer whether or not the address already has an account."""
    return await _service().register(data)


@blueprint.post("/login")
@public
@address_limited
@document_response(TokenPair, 200)
@document_response(TotpChallenge, 202)
@validate_body(LoginRequest, SMALL_BODY)
async def login(data: LoginRequest) -> Response:
    """Tokens; or, with TOTP enabled, 202 and a challenge to answer at /api/auth/login/totp."""
    result = await _service().login(data, g.clientId)
    return json_response(result, 202 if isinstance(result, TotpChallenge) else 200)


@blueprint.post("/login/totp")
@public
@responds(TokenPair)
@validate_body(TotpLoginRequest, SMALL_BODY)
async def login_totp(data: TotpLoginRequest) -> TokenPair:
    return await _service().login_with_totp(data, g.clientId)


@blueprint.post("/refresh")
@public
@responds(TokenPair)
@validate_body(RefreshRequest, SMALL_BODY)
async def refresh(data: RefreshRequest) -> TokenPair:
    """A new access token and a new refresh token; the one sent is spent (sending it again ends the session)."""
    return await _service().refresh(data.refresh_token)


@blueprint.get("/me")
@responds(Me)
async def me() -> Me:
    return await _service().me(_profile())


@blueprint.post("/logout")
@responds(Done)
async def logout() -> Done:
    await _service().logout(_profile())
    return _DONE


@blueprint.post("/logout-all")
@responds(Done)
async def logout_all() -> Done:
    await _service().logout(_profile(), everywhere=True)
    return _DONE


@blueprint.get("/sessions")
@responds(Sessions)
async def sessions() -> Sessions:
    return await _service().sessions(_profile())


@blueprint.delete("/sessions/<uuid:session_id>")
@responds(Done)
async def revoke_session(session_id: uuid.UUID) -> Done:
    await _service().revoke(_profile(), session_id)
    return _DONE


@blueprint.post("/password")
@responds(Done)
@validate_body(PasswordChange, SMALL_BODY)
async def change_password(data: PasswordChange) -> Done:
    """Needs the current password; ends every other session."""
    await _service().change_password(_profile(), data)
    return _DONE


@blueprint.post("/totp/enrol")
@responds(TotpEnrolment)
@validate_body(Reauthentication, SMALL_BODY)
async def enrol_totp(data: Reauthentication) -> TotpEnrolment:
    """Needs the current password: an access token alone cannot add a second factor."""
    return await _service().enrol_totp(_profile(), data.password)


@blueprint.post("/totp/confirm")
@responds(RecoveryCodes)
@validate_body(TotpCode, SMALL_BODY)
async def confirm_totp(data: TotpCode) -> RecoveryCodes:
    """Needs the current password and a code from the authenticator just set up."""
    return await _service().confirm_totp(_profile(), data)


@blueprint.post("/totp/disable")
@responds(Done)
@validate_body(TotpCode, SMALL_BODY)
async def disable_totp(data: TotpCode) -> Done:
    """Needs the current password and a current code: signing in is not enough to turn the second factor off."""
    await _service().disable_totp(_profile(), data)
    return _DONE

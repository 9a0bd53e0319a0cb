"""Accounts, tokens and sessions over HTTP: each security property its own test."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import pytest
from quart.typing import TestClientProtocol as HttpClient
from sqlalchemy import make_url

from app import create_app
from app.settings import Settings
from app.src.encryption.passwords import Argon2Parameters, hash_password, verify_password
from app.src.encryption.tokens import TokenKeyRing
from tests.integration.auth_support import NEW_KEY, OLD_KEY, PASSWORD, User, auth_settings, key_ring_setting, serve


@pytest.fixture
def ada(auth_app: HttpClient) -> User:
    return User(auth_app, f"ada-{uuid.uuid4().hex[:8]}@example.org")


async def signed_in(user: User) -> dict[str, Any]:
    assert (await user.register()).status_code == 202
    return await user.tokens()


async def test_register_then_sign_in_then_me(ada: User) -> None:
    tokens = await signed_in(ada)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["access_token"].startswith("v1.k2.")
    response = await ada.get("/api/auth/me", tokens["access_token"])
    assert response.status_code == 200
    me = await response.get_json()
    assert (me["email"], me["display_name"], me["roles"], me["totp_enabled"]) == (ada.email, "Ada", ["user"], False)
    assert response.headers["Cache-Control"] == "no-store"


async def test_registering_a_taken_address_answers_exactly_like_success(ada: User) -> None:
    first, second = await ada.register(), await ada.register("another long passphrase")
    assert (first.status_code, second.status_code) == (202, 202)
    assert await first.get_json() == await second.get_json()
    assert (await ada.login()).status_code == 200  # the first password still holds
    assert (await ada.login("another long passphrase")).status_code == 401


@pytest.mark.parametrize(
    ("password", "complaint"),
    [("short", "at least 8"), ("baseball", "most common"), ("1qaz2wsx", "most common"), ("x" * 129, "at most")],
)
async def test_weak_passwords_are_refused_and_nothing_is_created(ada: User, password: str, complaint: str) -> None:
    response = await ada.register(password)
    assert response.status_code == 422
    problem = await response.get_json()
    [error] = problem["errors"]
    assert error["pointer"] == "/password"
    assert complaint in error["detail"]
    assert (await ada.login(password)).status_code == 401


async def test_an_auth_body_larger_than_any_valid_one_is_refused_unread(ada: User) -> None:
    padded = {"email": ada.email, "password": PASSWORD, "display_name": "Ada", "padding": "x" * 17_000}
    response = await ada.client.post("/api/auth/register", json=padded, headers=ada.headers())
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_a_64_character_password_with_spaces_and_unicode_is_accepted(ada: User) -> None:
    password = "ünïcode and spaces are fine in a long passphrase, no rules needed!"[:64]
    assert (await ada.register(password)).status_code == 202
    assert (await ada.login(password)).status_code == 200


async def test_unknown_address_and_wrong_password_get_the_same_answer(ada: User, auth_app: HttpClient) -> None:
    await ada.register()
    stranger = User(auth_app, "nobody-" + ada.email)
    wrong, unknown = await ada.login("not my passphrase"), await stranger.login()
    assert wrong.status_code == unknown.status_code == 401
    strip = {"request_id"}
    wrong_body = {k: v for k, v in (await wrong.get_json()).items() if k not in strip}
    unknown_body = {k: v for k, v in (await unknown.get_json()).items() if k not in strip}
    assert wrong_body == unknown_body


async def test_unknown_address_takes_as_long_as_a_wrong_password(ada: User, auth_app: HttpClient) -> None:
    await ada.register()
    stranger = User(auth_app, "nobody-" + ada.email)

    async def mean_seconds(user: User) -> float:
        started = time.perf_counter()
        for _ in range(5):
            await user.login("not my passphrase")
        return (time.perf_counter() - started) / 5

    wrong, unknown = await mean_seconds(ada), await mean_seconds(stranger)
    # Both verify an Argon2id hash (tens of ms); without the dummy hash the unknown address would answer in ~1 ms.
    assert 0.5 < unknown / wrong < 2


async def test_routes_other_than_public_ones_need_a_token(ada: User) -> None:
    response = await ada.client.get("/api/auth/me", headers=ada.headers())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.get_json())["type"] == "urn:proving-ground:problem:unauthorized"


async def test_a_tampered_token_is_refused(ada: User) -> None:
    token = (await signed_in(ada))["access_token"]
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert (await ada.get("/api/auth/me", tampered)).status_code == 401


async def test_a_token_sealed_for_another_purpose_is_refused(ada: User) -> None:
    tokens = await signed_in(ada)
    ring = TokenKeyRing([NEW_KEY, OLD_KEY])
    claims = ring.open("access", tokens["access_token"])
    assert (await ada.get("/api/auth/me", ring.seal("totp-secret", claims))).status_code == 401
    assert (await ada.get("/api/auth/me", ring.seal("access", claims))).status_code == 200


async def test_an_expired_token_is_refused(ada: User) -> None:
    tokens = await signed_in(ada)
    ring = TokenKeyRing([NEW_KEY, OLD_KEY])
    claims = ring.open("access", tokens["access_token"])
    expired = ring.seal("access", {**claims, "exp": int(time.time()) - 1})
    response = await ada.get("/api/auth/me", expired)
    assert response.status_code == 401
    assert "expired" in (await response.get_json())["detail"]


async def test_a_token_from_an_older_key_still_listed_works_and_from_a_removed_key_does_not(
    settings: Settings,
) -> None:
    async with serve(create_app(auth_settings(settings, token_keys=key_ring_setting(OLD_KEY)))) as client:
        user = User(client, f"rotate-{uuid.uuid4().hex[:8]}@example.org")
        old_token = (await signed_in(user))["access_token"]
        assert old_token.startswith("v1.k1.")
    async with serve(create_app(auth_settings(settings, token_keys=key_ring_setting(NEW_KEY, OLD_KEY)))) as client:
        user.client = client
        assert (await user.get("/api/auth/me", old_token)).status_code == 200
        assert (await user.tokens())["access_token"].startswith("v1.k2.")
    async with serve(create_app(auth_settings(settings, token_keys=key_ring_setting(NEW_KEY)))) as client:
        user.client = client
        assert (await user.get("/api/auth/me", old_token)).status_code == 401


async def test_refresh_rotates_and_reusing_a_spent_token_ends_the_session(ada: User) -> None:
    first = await signed_in(ada)
    response = await ada.post("/api/auth/refresh", None, {"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = await response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await ada.get("/api/auth/me", second["access_token"])).status_code == 200

    reused = await ada.post("/api/auth/refresh", None, {"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert "used already" in (await reused.get_json())["detail"]
    # The whole session is gone: its newest tokens too.
    assert (await ada.get("/api/auth/me", second["access_token"])).status_code == 401
    assert (await ada.post("/api/auth/refresh", None, {"refresh_token": second["refresh_token"]})).status_code == 401


async def test_an_unknown_refresh_token_is_refused(ada: User) -> None:
    assert (await ada.post("/api/auth/refresh", None, {"refresh_token": "x" * 43})).status_code == 401


async def test_logout_takes_effect_at_once(ada: User) -> None:
    tokens = await signed_in(ada)
    assert (await ada.post("/api/auth/logout", tokens["access_token"])).status_code == 200
    assert (await ada.get("/api/auth/me", tokens["access_token"])).status_code == 401
    assert (await ada.post("/api/auth/refresh", None, {"refresh_token": tokens["refresh_token"]})).status_code == 401


async def test_logout_all_ends_every_session_of_the_account(ada: User) -> None:
    await ada.register()
    phone, laptop = await ada.tokens("phone"), await ada.tokens("laptop")
    assert (await ada.post("/api/auth/logout-all", phone["access_token"])).status_code == 200
    for tokens in (phone, laptop):
        assert (await ada.get("/api/auth/me", tokens["access_token"])).status_code == 401


async def test_sessions_are_listed_and_one_can_be_revoked(ada: User) -> None:
    await ada.register()
    phone, laptop = await ada.tokens("phone"), await ada.tokens("laptop")
    listing = await (await ada.get("/api/auth/sessions", phone["access_token"])).get_json()
    by_client = {session["client_id"]: session for session in listing["sessions"]}
    assert set(by_client) == {"phone", "laptop"}
    assert by_client["phone"]["current"] is True
    response = await ada.client.delete(
        f"/api/auth/sessions/{by_client['laptop']['id']}", headers=ada.headers(phone["access_token"])
    )
    assert response.status_code == 200
    assert (await ada.get("/api/auth/me", laptop["access_token"])).status_code == 401
    assert (await ada.get("/api/auth/me", phone["access_token"])).status_code == 200
    missing = await ada.client.delete(f"/api/auth/sessions/{uuid.uuid4()}", headers=ada.headers(phone["access_token"]))
    assert missing.status_code == 404


async def test_changing_the_password_needs_the_current_one_and_ends_the_other_sessions(ada: User) -> None:
    await ada.register()
    here, elsewhere = await ada.tokens("here"), await ada.tokens("elsewhere")
    refused = await ada.post(
        "/api/auth/password", here["access_token"], {"current_password": "wrong one!", "new_password": "x" * 20}
    )
    assert refused.status_code == 403
    changed = await ada.post(
        "/api/auth/password",
        here["access_token"],
        {"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 200
    assert (await ada.get("/api/auth/me", here["access_token"])).status_code == 200
    assert (await ada.get("/api/auth/me", elsewhere["access_token"])).status_code == 401
    assert (await ada.login()).status_code == 401
    assert (await ada.login("a brand new passphrase")).status_code == 200


async def test_a_new_password_obeys_the_policy(ada: User) -> None:
    tokens = await signed_in(ada)
    weak = await ada.post(
        "/api/auth/password", tokens["access_token"], {"current_password": PASSWORD, "new_password": "password1"}
    )
    assert weak.status_code == 422
    assert (await weak.get_json())["errors"][0]["pointer"] == "/new_password"


async def test_a_hash_made_with_older_parameters_is_redone_at_the_next_sign_in(ada: User, database_uri: str) -> None:
    weak = hash_password(PASSWORD, Argon2Parameters(memory_kib=1024, iterations=1, lanes=1))
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        await connection.execute(
            "INSERT INTO users (email, display_name, password_hash, email_verified_at) VALUES ($1, 'Ada', $2, now())",
            ada.email,
            weak,
        )
        assert (await ada.login()).status_code == 200
        stored = await connection.fetchval("SELECT password_hash FROM users WHERE email = $1", ada.email)
    finally:
        await connection.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(PASSWORD, stored)
    assert (await ada.login()).status_code == 200

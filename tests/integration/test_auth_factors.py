"""TOTP, lockout, login alerts and what never reaches a log line."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.http.services import services_of
from app.settings import Settings
from app.src.encryption.totp import STEP_SECONDS, code_at
from simulators.client import SimulatorClient
from tests.integration.auth_support import NEW_KEY, OLD_KEY, PASSWORD, User, auth_settings, key_ring_setting, serve
from tests.support.simulator_fixtures import API_KEY


@pytest.fixture
def ada(auth_app: HttpClient) -> User:
    return User(auth_app, f"ada-{uuid.uuid4().hex[:8]}@example.org")


def step_now() -> int:
    return int(time.time() // STEP_SECONDS)


async def with_totp(user: User) -> tuple[dict[str, Any], str, list[str]]:
    """Register, sign in and turn TOTP on: (tokens, secret, recovery codes)."""
    await user.register()
    tokens = await user.tokens()
    enrolment = await (
        await user.post("/api/auth/totp/enrol", tokens["access_token"], {"password": PASSWORD})
    ).get_json()
    secret = enrolment["secret"]
    assert enrolment["provisioning_uri"].startswith("otpauth://totp/")
    answer = {"code": code_at(secret, step_now()), "password": PASSWORD}
    confirm = await user.post("/api/auth/totp/confirm", tokens["access_token"], answer)
    assert confirm.status_code == 200
    codes = (await confirm.get_json())["recovery_codes"]
    return tokens, secret, codes


async def challenge_of(user: User) -> str:
    response = await user.login()
    assert response.status_code == 202
    body = await response.get_json()
    assert body["totp_required"] is True
    return str(body["challenge"])


async def test_with_totp_sign_in_needs_a_code_after_the_password(ada: User) -> None:
    _, secret, _ = await with_totp(ada)
    challenge = await challenge_of(ada)
    answer = {"challenge": challenge, "code": code_at(secret, step_now() + 1)}
    response = await ada.post("/api/auth/login/totp", None, answer)
    assert response.status_code == 200
    me = await (await ada.get("/api/auth/me", (await response.get_json())["access_token"])).get_json()
    assert me["totp_enabled"] is True


async def test_a_totp_code_is_accepted_once(ada: User) -> None:
    _, secret, _ = await with_totp(ada)
    code = code_at(secret, step_now() + 1)
    first = await ada.post("/api/auth/login/totp", None, {"challenge": await challenge_of(ada), "code": code})
    assert first.status_code == 200
    replay = await ada.post("/api/auth/login/totp", None, {"challenge": await challenge_of(ada), "code": code})
    assert replay.status_code == 401


async def test_a_code_from_two_steps_ago_is_refused(ada: User) -> None:
    _, secret, _ = await with_totp(ada)
    old = code_at(secret, step_now() - 2)
    response = await ada.post("/api/auth/login/totp", None, {"challenge": await challenge_of(ada), "code": old})
    assert response.status_code == 401


async def test_a_recovery_code_works_once_instead_of_a_totp_code(ada: User) -> None:
    _, _, codes = await with_totp(ada)
    answer = {"challenge": await challenge_of(ada), "recovery_code": codes[0].upper()}
    assert (await ada.post("/api/auth/login/totp", None, answer)).status_code == 200
    again = {"challenge": await challenge_of(ada), "recovery_code": codes[0]}
    assert (await ada.post("/api/auth/login/totp", None, again)).status_code == 401


async def test_a_challenge_is_bound_to_its_client(ada: User) -> None:
    _, secret, _ = await with_totp(ada)
    answer = {"challenge": await challenge_of(ada), "code": code_at(secret, step_now() + 1)}
    response = await ada.client.post("/api/auth/login/totp", json=answer, headers=ada.headers(client_id="other"))
    assert response.status_code == 401


async def test_disabling_totp_needs_a_current_code(ada: User) -> None:
    tokens, secret, _ = await with_totp(ada)
    refused = await ada.post("/api/auth/totp/disable", tokens["access_token"], {"code": "000000", "password": PASSWORD})
    assert refused.status_code == 401
    current = {"code": code_at(secret, step_now() + 1), "password": PASSWORD}
    done = await ada.post("/api/auth/totp/disable", tokens["access_token"], current)
    assert done.status_code == 200
    assert (await ada.login()).status_code == 200  # no challenge any more


async def test_totp_attempts_are_rate_limited(settings: Settings) -> None:
    async with serve(create_app(auth_settings(settings, login_failures_per_burst=3))) as client:
        user = User(client, f"totp-{uuid.uuid4().hex[:8]}@example.org")
        _, secret, _ = await with_totp(user)
        statuses = []
        for _ in range(4):
            answer = {"challenge": await challenge_of(user), "code": "000000"}
            statuses.append((await user.post("/api/auth/login/totp", None, answer)).status_code)
        assert statuses == [401, 401, 401, 429]
        good = {"challenge": await challenge_of(user), "code": code_at(secret, step_now() + 1)}
        assert (await user.post("/api/auth/login/totp", None, good)).status_code == 429


async def test_lockout_after_the_burst_limit_for_real_and_unknown_addresses_alike_then_expiry(
    settings: Settings,
) -> None:
    configured = auth_settings(settings, login_failures_per_burst=3, login_burst_seconds=2)
    async with serve(create_app(configured)) as client:
        ada = User(client, f"lock-{uuid.uuid4().hex[:8]}@example.org")
        ghost = User(client, "ghost-" + ada.email)
        await ada.register()
        for user in (ada, ghost):
            assert [(await user.login("wrong passphrase!")).status_code for _ in range(3)] == [401] * 3
        locked, ghost_locked = await ada.login(), await ghost.login()  # the right password changes nothing
        assert locked.status_code == ghost_locked.status_code == 429
        assert locked.headers["Retry-After"] == ghost_locked.headers["Retry-After"]
        assert 1 <= int(locked.headers["Retry-After"]) <= 2
        await asyncio.sleep(int(locked.headers["Retry-After"]) + 0.1)  # the lockout's expiry is the behaviour
        assert (await ada.login()).status_code == 200


async def test_the_hourly_limit_locks_too(settings: Settings) -> None:
    configured = auth_settings(settings, login_failures_per_hour=4, login_failures_per_burst=100)
    async with serve(create_app(configured)) as client:
        ada = User(client, f"hourly-{uuid.uuid4().hex[:8]}@example.org")
        await ada.register()
        for _ in range(4):
            await ada.login("wrong passphrase!")
        response = await ada.login()
        assert response.status_code == 429
        assert 3500 < int(response.headers["Retry-After"]) <= 3600


async def test_a_sign_in_from_a_new_client_writes_one_alert_and_never_calls_the_provider_itself(
    settings: Settings, simulator_urls: dict[str, str], notify_sim: SimulatorClient
) -> None:
    notify = {"notify_url": simulator_urls["notify"], "notify_api_key": SecretStr(API_KEY)}
    async with serve(create_app(auth_settings(settings, **notify))) as client:
        ada = User(client, f"alert-{uuid.uuid4().hex[:8]}@example.org")
        await ada.register()
        journal_before = await notify_sim.journal_count()
        for client_id in ("phone", "phone", "laptop"):
            await ada.tokens(client_id)
        alerts = await outbox_messages(client, "login_alert", ada.email)
        assert await notify_sim.journal_count() == journal_before  # the worker sends them, not the sign-in
    assert [alert["to"] for alert in alerts] == [ada.email, ada.email]
    assert all(alert["subject"] == "New sign-in to your account" for alert in alerts)
    assert ["(phone)" in alerts[0]["body"], "(laptop)" in alerts[1]["body"]] == [True, True]


async def outbox_messages(client: HttpClient, kind: str, to: str) -> list[dict[str, Any]]:
    async with services_of(client.app).database.reading() as connection:
        rows = await connection.fetch(
            "SELECT payload FROM outbox WHERE kind = $1 AND payload->>'to' = $2 ORDER BY id", kind, to
        )
    return [json.loads(row["payload"]) for row in rows]


async def test_no_password_token_code_or_secret_reaches_a_log_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    secrets_seen: list[str] = [PASSWORD, "wrong passphrase!"]
    async with serve(create_app(auth_settings(settings, log_level="DEBUG"))) as client:
        ada = User(client, f"logs-{uuid.uuid4().hex[:8]}@example.org")
        await ada.login("wrong passphrase!")
        tokens, secret, codes = await with_totp(ada)
        challenge = await challenge_of(ada)
        code = code_at(secret, step_now() + 1)
        signed_in = await (
            await ada.post("/api/auth/login/totp", None, {"challenge": challenge, "code": code})
        ).get_json()
        refreshed = await ada.post("/api/auth/refresh", None, {"refresh_token": signed_in["refresh_token"]})
        secrets_seen += [secret, code, challenge, *codes, *tokens.values(), *signed_in.values()]
        secrets_seen += list((await refreshed.get_json()).values())
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 8  # one access line per request at least
    for line in lines:
        assert line.startswith("{"), line
        for secret_value in secrets_seen:
            if isinstance(secret_value, str) and len(secret_value) >= 6:
                assert secret_value not in line


async def test_a_totp_secret_sealed_with_a_removed_key_refuses_codes_but_not_recovery_codes(
    settings: Settings,
) -> None:
    async with serve(create_app(auth_settings(settings, token_keys=key_ring_setting(OLD_KEY)))) as client:
        user = User(client, f"rotated-{uuid.uuid4().hex[:8]}@example.org")
        _, secret, codes = await with_totp(user)
    async with serve(create_app(auth_settings(settings, token_keys=key_ring_setting(NEW_KEY)))) as client:
        user.client = client
        answer = {"challenge": await challenge_of(user), "code": code_at(secret, step_now() + 1)}
        with structlog.testing.capture_logs() as logs:
            assert (await user.post("/api/auth/login/totp", None, answer)).status_code == 401
        [unopened] = [entry for entry in logs if entry["log_level"] == "error"]
        assert unopened["event"] == "TOTP secret sealed with a removed key"
        assert isinstance(unopened["user_id"], int)
        recovery = {"challenge": await challenge_of(user), "recovery_code": codes[0]}
        assert (await user.post("/api/auth/login/totp", None, recovery)).status_code == 200

"""Auth against a hostile caller: attempts sent all at once, a stolen access token, codes in other scripts' digits,
and sign-in challenges replayed or outlived by a password change."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.settings import Settings
from app.src.encryption.totp import STEP_SECONDS, code_at
from tests.integration.auth_support import PASSWORD, User, auth_settings, serve

FULLWIDTH, ARABIC_INDIC = "\uff11\uff12\uff13\uff14\uff15\uff16", "\u0661\u0662\u0663\u0664\u0665\u0666"


def step_now() -> int:
    return int(time.time() // STEP_SECONDS)


async def with_totp(user: User) -> tuple[str, str, list[str]]:
    """Register, sign in and turn TOTP on: (access token, secret, recovery codes)."""
    await user.register()
    token = (await user.tokens())["access_token"]
    secret = (await (await user.post("/api/auth/totp/enrol", token, {"password": PASSWORD})).get_json())["secret"]
    confirm = await user.post(
        "/api/auth/totp/confirm", token, {"code": code_at(secret, step_now()), "password": PASSWORD}
    )
    assert confirm.status_code == 200, await confirm.get_data(as_text=True)
    return token, secret, (await confirm.get_json())["recovery_codes"]


async def challenge_of(user: User) -> str:
    response = await user.login()
    assert response.status_code == 202
    return str((await response.get_json())["challenge"])


@pytest.fixture
async def strict(settings: Settings) -> Any:
    """The service with a burst limit of 3 failures, and room for every request of a burst at once: this is about
    the attempts, not the concurrency limit (which could shed some of a dozen sign-ins queued on one account)."""
    limits = {"login_failures_per_burst": 3, "inbound_concurrency": 64, "inbound_busy_target": None}
    async with serve(create_app(auth_settings(settings, **limits))) as client:
        yield client


async def test_wrong_passwords_sent_at_once_get_no_more_tries_than_the_limit(strict: HttpClient) -> None:
    user = User(strict, f"race-{uuid.uuid4().hex[:8]}@example.org")
    await user.register()
    answers = await asyncio.gather(*(user.login("not my passphrase") for _ in range(12)))
    assert Counter(answer.status_code for answer in answers) == {401: 3, 429: 9}


async def test_wrong_codes_sent_at_once_get_no_more_tries_than_the_limit(strict: HttpClient) -> None:
    user = User(strict, f"race-totp-{uuid.uuid4().hex[:8]}@example.org")
    await with_totp(user)
    challenges = [await challenge_of(user) for _ in range(8)]
    answers = await asyncio.gather(
        *(user.post("/api/auth/login/totp", None, {"challenge": challenge, "recovery_code": "wrong"})
          for challenge in challenges)
    )  # fmt: skip
    assert Counter(answer.status_code for answer in answers) == {401: 3, 429: 5}


async def test_a_stolen_access_token_cannot_change_how_the_account_signs_in(strict: HttpClient) -> None:
    user = User(strict, f"stolen-{uuid.uuid4().hex[:8]}@example.org")
    token, secret, _ = await with_totp(user)
    current = code_at(secret, step_now() + 1)
    assert (await user.post("/api/auth/totp/disable", token, {"code": current})).status_code == 422
    wrong = {"code": current, "password": "a guess"}
    assert (await user.post("/api/auth/totp/disable", token, wrong)).status_code == 403
    new_password = {"current_password": "a guess", "new_password": "the thief's own"}
    assert (await user.post("/api/auth/password", token, new_password)).status_code == 403
    assert (await user.post("/api/auth/totp/enrol", token, {"password": "another guess"})).status_code == 403
    # Three wrong passwords: the account is locked for them as for three failed sign-ins.
    locked = await user.post("/api/auth/totp/disable", token, {"code": current, "password": PASSWORD})
    assert locked.status_code == 429
    assert (await user.login()).status_code == 429
    assert (await (await user.get("/api/auth/me", token)).get_json())["totp_enabled"] is True


@pytest.mark.parametrize("code", [FULLWIDTH, ARABIC_INDIC])
async def test_a_code_in_other_digits_is_refused_on_every_route_that_takes_one(strict: HttpClient, code: str) -> None:
    user = User(strict, f"digits-{uuid.uuid4().hex[:8]}@example.org")
    token, _, _ = await with_totp(user)
    answers = [
        await user.post("/api/auth/login/totp", None, {"challenge": await challenge_of(user), "code": code}),
        await user.post("/api/auth/totp/confirm", token, {"code": code, "password": PASSWORD}),
        await user.post("/api/auth/totp/disable", token, {"code": code, "password": PASSWORD}),
    ]
    for answer in answers:
        assert answer.status_code == 422
        assert [error["pointer"] for error in (await answer.get_json())["errors"]] == ["/code"]


async def test_a_sign_in_challenge_is_answered_once(strict: HttpClient) -> None:
    user = User(strict, f"once-{uuid.uuid4().hex[:8]}@example.org")
    _, _, codes = await with_totp(user)
    challenge = await challenge_of(user)
    first = await user.post("/api/auth/login/totp", None, {"challenge": challenge, "recovery_code": codes[0]})
    assert first.status_code == 200
    again = await user.post("/api/auth/login/totp", None, {"challenge": challenge, "recovery_code": codes[1]})
    assert again.status_code == 401
    assert "answered already" in (await again.get_json())["detail"]
    fresh = await user.post("/api/auth/login/totp", None, {"challenge": await challenge_of(user),
                                                           "recovery_code": codes[1]})  # fmt: skip
    assert fresh.status_code == 200  # the refused replay did not spend the recovery code


async def test_a_new_password_voids_the_sign_in_challenges_given_before_it(strict: HttpClient) -> None:
    user = User(strict, f"void-{uuid.uuid4().hex[:8]}@example.org")
    token, secret, _ = await with_totp(user)
    challenge = await challenge_of(user)
    changed = await user.post("/api/auth/password", token, {"current_password": PASSWORD,
                                                            "new_password": "a brand new passphrase"})  # fmt: skip
    assert changed.status_code == 200
    answer = await user.post(
        "/api/auth/login/totp", None, {"challenge": challenge, "code": code_at(secret, step_now())}
    )
    assert answer.status_code == 401
    assert "no longer valid" in (await answer.get_json())["detail"]

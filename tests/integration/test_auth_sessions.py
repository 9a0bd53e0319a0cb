"""Sessions and second factors between two accounts, against the service and the rows it writes: each account
sees, ends and spends only its own (sessions, refresh tokens, recovery codes), and every ended session says why.
Like test_auth_service.py: the service itself on a real database, no HTTP, a clock the test moves."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from app.src.api.auth.models import (
    LoginRequest,
    PasswordChange,
    RegisterRequest,
    TokenPair,
    TotpChallenge,
    TotpCode,
    TotpLoginRequest,
)
from app.src.api.auth.password_policy import password_problem
from app.src.api.auth.service import AuthPolicy, Profile
from app.src.api.common.errors import AuthFailure, InvalidInputError, NotFoundError, UnauthorizedError
from app.src.encryption.passwords import Argon2Parameters
from app.src.encryption.totp import STEP_SECONDS, code_at
from tests.integration.auth_service_support import Auth, messages, waiting_on_a_row_lock
from tests.integration.auth_support import PASSWORD

pytestmark = pytest.mark.integration


@dataclass
class Account:
    auth: Auth
    email: str

    async def tokens(self, client_id: str = "script") -> TokenPair:
        signed_in = await self.auth.service.login(LoginRequest(email=self.email, password=PASSWORD), client_id)
        assert isinstance(signed_in, TokenPair)
        return signed_in

    async def profile(self, tokens: TokenPair) -> Profile:
        return await self.auth.service.authenticate(tokens.access_token)


async def account(auth: Auth, email: str) -> Account:
    await auth.service.register(RegisterRequest(email=email, password=PASSWORD, display_name="Someone"))
    [*_, newest] = await messages(auth.database, "verification")
    token = newest["body"].split("token=")[1].split()[0]
    await auth.service.verify_email(token)
    return Account(auth, email)


async def ended(auth: Auth, session_id: uuid.UUID) -> str | None:
    """Why the session ended (None while it is live)."""
    async with auth.database.reading() as connection:
        reason: str | None = await connection.fetchval("SELECT revoked_reason FROM sessions WHERE id = $1", session_id)
    return reason


async def two_accounts(auth: Callable[..., Auth]) -> tuple[Account, Account]:
    service = auth()
    return await account(service, "ada@example.org"), await account(service, "bob@example.org")


async def test_an_account_lists_only_its_own_live_sessions_newest_first(auth: Callable[..., Auth]) -> None:
    ada, bob = await two_accounts(auth)
    older = await ada.profile(await ada.tokens("laptop"))
    revoked = await ada.profile(await ada.tokens("tablet"))
    newer = await ada.profile(await ada.tokens("phone"))
    await ada.auth.service.revoke(newer, revoked.session_id)
    await bob.tokens("bobs")
    listed = (await ada.auth.service.sessions(newer)).sessions
    assert [(session.id, session.client_id, session.current) for session in listed] == [
        (newer.session_id, "phone", True),
        (older.session_id, "laptop", False),
    ]


async def test_logging_out_ends_this_session_and_everywhere_ends_only_this_accounts(
    auth: Callable[..., Auth],
) -> None:
    ada, bob = await two_accounts(auth)
    first, second = [await ada.profile(await ada.tokens(client)) for client in ("laptop", "phone")]
    bobs = await bob.profile(await bob.tokens())
    await ada.auth.service.logout(first)
    assert (await ended(ada.auth, first.session_id), await ended(ada.auth, second.session_id)) == ("logout", None)
    await ada.auth.service.logout(second, everywhere=True)
    assert await ended(ada.auth, second.session_id) == "logout everywhere"
    assert await ended(ada.auth, first.session_id) == "logout"  # an ended session keeps its first reason
    assert await ended(bob.auth, bobs.session_id) is None
    assert (await bob.auth.service.authenticate((await bob.tokens()).access_token)).user_id == bobs.user_id


async def test_an_account_revokes_its_own_sessions_once_and_never_anothers(auth: Callable[..., Auth]) -> None:
    ada, bob = await two_accounts(auth)
    mine, other = [await ada.profile(await ada.tokens(client)) for client in ("laptop", "phone")]
    bobs = await bob.profile(await bob.tokens())
    with pytest.raises(NotFoundError, match=r"^There is no such session of yours\.$"):
        await ada.auth.service.revoke(mine, bobs.session_id)
    assert await ended(bob.auth, bobs.session_id) is None
    await ada.auth.service.revoke(mine, other.session_id)
    assert await ended(ada.auth, other.session_id) == "revoked"
    with pytest.raises(NotFoundError):
        await ada.auth.service.revoke(mine, other.session_id)  # ended already: nothing of yours to end


async def test_a_new_password_ends_the_accounts_other_sessions_and_no_one_elses(auth: Callable[..., Auth]) -> None:
    ada, bob = await two_accounts(auth)
    current, other = [await ada.profile(await ada.tokens(client)) for client in ("laptop", "phone")]
    bobs = await bob.profile(await bob.tokens())
    change = PasswordChange(current_password=PASSWORD, new_password="an entirely new passphrase 42")
    await ada.auth.service.change_password(current, change)
    assert [await ended(ada.auth, session.session_id) for session in (current, other, bobs)] == [
        None,
        "password changed",
        None,
    ]


async def test_a_weak_new_password_names_the_field_and_the_rule(auth: Callable[..., Auth]) -> None:
    ada, _ = await two_accounts(auth)
    current = await ada.profile(await ada.tokens())
    with pytest.raises(InvalidInputError) as weak:
        await ada.auth.service.change_password(current, PasswordChange(current_password=PASSWORD,
                                                                        new_password="ada@example.org"))  # fmt: skip
    [problem] = weak.value.problems
    expected = password_problem("ada@example.org", "ada@example.org")
    assert (problem.location, problem.code, problem.detail) == (("new_password",), "password_policy", expected)
    assert weak.value.detail == expected


async def test_refreshing_rotates_within_the_session_and_touches_only_it(auth: Callable[..., Auth]) -> None:
    ada, bob = await two_accounts(auth)
    tokens = await ada.tokens()
    session = (await ada.profile(tokens)).session_id
    bobs = await bob.profile(await bob.tokens())
    async with ada.auth.database.reading() as connection:
        before = dict(await connection.fetch("SELECT id, last_used_at FROM sessions"))
    rotated = await ada.auth.service.refresh(tokens.refresh_token)
    profile = await ada.profile(rotated)
    assert (profile.session_id, profile.user_id) == (session, 1)
    async with ada.auth.database.reading() as connection:
        after = dict(await connection.fetch("SELECT id, last_used_at FROM sessions"))
    assert after[session] > before[session]
    assert after[bobs.session_id] == before[bobs.session_id]


async def test_a_refresh_token_never_issued_reused_or_of_an_ended_session_is_refused_as_such(
    auth: Callable[..., Auth],
) -> None:
    ada, bob = await two_accounts(auth)
    service = ada.auth.service
    with pytest.raises(UnauthorizedError, match=r"^The refresh token is not valid\.$"):
        await service.refresh("never issued")
    first = await ada.tokens()
    session = (await ada.profile(first)).session_id
    bobs = await bob.profile(await bob.tokens())
    await service.refresh(first.refresh_token)
    with pytest.raises(UnauthorizedError, match=r"^The refresh token was used already; the session is ended\.$"):
        await service.refresh(first.refresh_token)
    assert (await ended(ada.auth, session), await ended(bob.auth, bobs.session_id)) == ("refresh token reused", None)

    second = await ada.tokens()
    logged_out = await ada.profile(second)
    await service.logout(logged_out)
    with pytest.raises(UnauthorizedError, match=r"^The session has ended; sign in again\.$"):
        await service.refresh(second.refresh_token)
    with pytest.raises(UnauthorizedError, match="used already"):
        await service.refresh(second.refresh_token)
    assert await ended(ada.auth, logged_out.session_id) == "logout"  # the first reason stays


async def test_an_expired_session_cannot_be_refreshed(auth: Callable[..., Auth]) -> None:
    ada, _ = await two_accounts(auth)
    tokens = await ada.tokens()
    async with ada.auth.database.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE sessions SET expires_at = now() - interval '1 second'"))
    with pytest.raises(UnauthorizedError, match=r"^The session has ended; sign in again\.$"):
        await ada.auth.service.refresh(tokens.refresh_token)


async def test_a_recovery_code_works_only_for_its_own_account(auth: Callable[..., Auth]) -> None:
    ada, bob = await two_accounts(auth)
    _, bobs_codes = await enrolled_account(bob)
    await enrolled_account(ada)
    with pytest.raises(UnauthorizedError) as refused:
        await ada.auth.service.login_with_totp(
            TotpLoginRequest(challenge=await challenge(ada), recovery_code=bobs_codes[0]), "script"
        )
    assert refused.value.reason is AuthFailure.INVALID_CODE
    assert str(refused.value.detail) == "The code is not valid."


async def challenge(who: Account) -> str:
    signed_in = await who.auth.service.login(LoginRequest(email=who.email, password=PASSWORD), "script")
    assert isinstance(signed_in, TotpChallenge)
    return signed_in.challenge


async def enrolled_account(who: Account) -> tuple[str, list[str]]:
    profile = await who.profile(await who.tokens())
    secret = (await who.auth.service.enrol_totp(profile, PASSWORD)).secret
    step = await who.auth.clock.step_with_time_left()
    codes = await who.auth.service.confirm_totp(profile, TotpCode(code=code_at(secret, step - 1), password=PASSWORD))
    return secret, codes.recovery_codes


async def recovery_codes_left(auth: Auth, email: str) -> int:
    async with auth.database.reading() as connection:
        return int(await connection.fetchval(
            "SELECT count(*) FROM recovery_codes JOIN users ON users.id = recovery_codes.user_id WHERE email = $1",
            email,
        ))  # fmt: skip


async def test_turning_totp_off_takes_the_accounts_recovery_codes_and_leaves_the_others(
    auth: Callable[..., Auth],
) -> None:
    ada, bob = await two_accounts(auth)
    profile = await ada.profile(await ada.tokens())
    secret, _ = await enrolled_account(ada)
    await enrolled_account(bob)
    code = code_at(secret, int(ada.auth.clock() // STEP_SECONDS))
    await ada.auth.service.disable_totp(profile, TotpCode(code=code, password=PASSWORD))
    assert (await recovery_codes_left(ada.auth, ada.email), await recovery_codes_left(bob.auth, bob.email)) == (0, 10)


async def test_a_code_for_an_enrolment_never_confirmed_does_not_turn_totp_off(auth: Callable[..., Auth]) -> None:
    ada, _ = await two_accounts(auth)
    profile = await ada.profile(await ada.tokens())
    secret = (await ada.auth.service.enrol_totp(profile, PASSWORD)).secret
    code = code_at(secret, int(ada.auth.clock() // STEP_SECONDS))
    with pytest.raises(UnauthorizedError) as refused:
        await ada.auth.service.disable_totp(profile, TotpCode(code=code, password=PASSWORD))
    assert refused.value.reason is AuthFailure.INVALID_CODE


async def test_a_right_second_factor_clears_the_wrong_ones_before_it(auth: Callable[..., Auth]) -> None:
    service = auth(failures_per_burst=3)
    ada = await account(service, "ada@example.org")
    secret, _ = await enrolled_account(ada)
    step = int(ada.auth.clock() // STEP_SECONDS)

    async def answer(code: str) -> None:
        await ada.auth.service.login_with_totp(TotpLoginRequest(challenge=await challenge(ada), code=code), "script")

    for attempt in range(2):
        for _ in range(2):
            with pytest.raises(UnauthorizedError):
                await answer("000000" if code_at(secret, step + attempt) != "000000" else "111111")
        await answer(code_at(secret, step + attempt))  # two wrong, then right: never three wrong in a row


async def test_a_challenge_answered_while_the_password_changes_waits_for_the_change_and_is_refused(
    auth: Callable[..., Auth],
) -> None:
    ada = await account(auth(), "ada@example.org")
    secret, _ = await enrolled_account(ada)
    pending = await challenge(ada)
    code = code_at(secret, int(ada.auth.clock() // STEP_SECONDS))
    async with ada.auth.database.engine.connect() as connection, connection.begin():
        await connection.execute(sa.text("UPDATE users SET password_hash = 'another' WHERE email = :email"),
                                 {"email": ada.email})  # fmt: skip
        answering = asyncio.create_task(
            ada.auth.service.login_with_totp(TotpLoginRequest(challenge=pending, code=code), "script")
        )
        await waiting_on_a_row_lock(ada.auth, answering)
    with pytest.raises(UnauthorizedError, match=r"^The sign-in challenge is no longer valid; sign in again\.$"):
        await answering


async def test_a_challenge_is_answered_once_and_each_account_counts_its_own_failures(
    auth: Callable[..., Auth],
) -> None:
    service = auth(failures_per_burst=3)
    ada, bob = await account(service, "ada@example.org"), await account(service, "bob@example.org")
    ada_secret, ada_codes = await enrolled_account(ada)
    bob_secret, _ = await enrolled_account(bob)
    step = int(service.clock() // STEP_SECONDS)
    pending = await challenge(ada)
    await service.service.login_with_totp(TotpLoginRequest(challenge=pending, code=code_at(ada_secret, step)), "script")
    with pytest.raises(UnauthorizedError, match=r"^The sign-in challenge was answered already; sign in again\.$"):
        await service.service.login_with_totp(TotpLoginRequest(challenge=pending, recovery_code=ada_codes[0]), "script")
    for _ in range(3):
        with pytest.raises(UnauthorizedError, match=r"^The code is not valid\.$"):
            await service.service.login_with_totp(TotpLoginRequest(challenge=await challenge(ada), code="000000"
                                                                   if code_at(ada_secret, step) != "000000"
                                                                   else "111111"), "script")  # fmt: skip
    right = TotpLoginRequest(challenge=await challenge(bob), code=code_at(bob_secret, step))
    assert isinstance(await service.service.login_with_totp(right, "script"), TokenPair)  # ada's lockout is hers


async def test_a_hash_redone_at_sign_in_is_the_one_the_challenge_is_given_for(auth: Callable[..., Auth]) -> None:
    ada = await account(auth(), "ada@example.org")
    secret, _ = await enrolled_account(ada)
    stronger = Account(auth(argon2=Argon2Parameters(memory_kib=2048, iterations=1, lanes=1)), ada.email)
    async with ada.auth.database.reading() as connection:
        before = await connection.fetchval("SELECT password_hash FROM users WHERE email = $1", ada.email)
    pending = await challenge(stronger)
    async with ada.auth.database.reading() as connection:
        after = await connection.fetchval("SELECT password_hash FROM users WHERE email = $1", ada.email)
    assert "m=2048" in after
    assert after != before
    answer = TotpLoginRequest(challenge=pending, code=code_at(secret, int(stronger.auth.clock() // STEP_SECONDS)))
    assert isinstance(await stronger.auth.service.login_with_totp(answer, "script"), TokenPair)


async def test_the_challenge_a_sign_in_spends_is_kept_until_it_expires_whatever_the_time_zone(
    auth: Callable[..., Auth], monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = await account(auth(), "ada@example.org")
    secret, _ = await enrolled_account(ada)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        pending = await challenge(ada)
        code = code_at(secret, int(ada.auth.clock() // STEP_SECONDS))
        await ada.auth.service.login_with_totp(TotpLoginRequest(challenge=pending, code=code), "script")
    finally:
        monkeypatch.undo()
        time.tzset()
    async with ada.auth.database.reading() as connection:
        left = await connection.fetchval("SELECT extract(epoch FROM expires_at - now()) FROM spent_challenges")
    assert 0 < left <= AuthPolicy().challenge_seconds + 5


async def test_a_challenge_answered_with_no_code_at_all_is_refused(auth: Callable[..., Auth]) -> None:
    ada = await account(auth(), "ada@example.org")
    await enrolled_account(ada)
    with pytest.raises(UnauthorizedError) as refused:
        await ada.auth.service.login_with_totp(TotpLoginRequest(challenge=await challenge(ada)), "script")
    assert refused.value.reason is AuthFailure.INVALID_CODE

"""Each refusal of the auth service, with the words and the code a client is shown (a problem's detail and type
come from them), and the rules that decide between two refusals that look alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from app.src.api.auth.models import LoginRequest, PasswordChange, RegisterRequest, TokenPair, TotpCode
from app.src.api.common.errors import ConflictError, ForbiddenError, LockedError, UnauthorizedError
from app.src.encryption.totp import STEP_SECONDS, code_at
from tests.integration.auth_service_support import EMAIL, Auth, messages, waiting_on_a_row_lock
from tests.integration.auth_support import PASSWORD

pytestmark = pytest.mark.integration

WRONG = "not my passphrase at all"


async def registered(auth: Auth, *, confirmed: bool = True) -> None:
    accepted = await auth.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    assert accepted.detail == "If the address can be registered, a link to confirm it is on its way."
    if confirmed:
        await auth.service.verify_email(await auth.link_token())


async def test_a_wrong_password_then_a_lockout_say_so_in_those_words(auth: Callable[..., Auth]) -> None:
    ada = auth(failures_per_burst=1)
    await registered(ada)
    with pytest.raises(UnauthorizedError, match=r"^The e-mail address or the password is not correct\.$"):
        await ada.sign_in(WRONG)
    with pytest.raises(LockedError, match=r"^Too many failed attempts; try again later\.$"):
        await ada.sign_in()


async def test_an_unconfirmed_address_is_told_to_confirm_and_its_right_password_clears_the_failures(
    auth: Callable[..., Auth],
) -> None:
    ada = auth(failures_per_burst=3)
    await registered(ada, confirmed=False)
    for _ in range(2):
        for password in (WRONG, WRONG, PASSWORD):  # never three wrong in a row
            with pytest.raises((UnauthorizedError, ForbiddenError)) as refused:
                await ada.sign_in(password)
    assert isinstance(refused.value, ForbiddenError)
    assert (refused.value.detail, refused.value.code) == (
        "Confirm your e-mail address first: open the link sent to it.",
        "unverified",
    )


async def test_access_tokens_that_are_not_valid_expired_or_of_an_ended_session_are_told_apart(
    auth: Callable[..., Auth],
) -> None:
    ada = auth()
    await registered(ada)
    with pytest.raises(UnauthorizedError, match=r"^The access token is not valid\.$"):
        await ada.service.authenticate("not a token")
    tokens = await ada.tokens()
    profile = await ada.service.authenticate(tokens.access_token)
    assert profile.roles == ("user",)
    await ada.service.logout(profile)
    with pytest.raises(UnauthorizedError, match=r"^The session has ended; sign in again\.$"):
        await ada.service.authenticate(tokens.access_token)
    fresh = await ada.tokens()
    ada.clock.advance(fresh.expires_in + 1)
    with pytest.raises(UnauthorizedError, match=r"^The access token has expired\.$"):
        await ada.service.authenticate(fresh.access_token)


async def test_a_gone_account_is_told_so(auth: Callable[..., Auth]) -> None:
    ada = auth()
    await registered(ada)
    profile = await ada.profile()
    async with ada.database.engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM users"))  # with its sessions; the profile was read before
    with pytest.raises(UnauthorizedError, match=r"^The account is gone\.$"):
        await ada.service.me(profile)
    with pytest.raises(UnauthorizedError, match=r"^The account is gone\.$"):
        await ada.service.enrol_totp(profile, PASSWORD)


async def test_totp_refusals_name_the_step_to_take(auth: Callable[..., Auth]) -> None:
    ada = auth()
    await registered(ada)
    profile = await ada.profile()
    with pytest.raises(ForbiddenError) as wrong:
        await ada.service.enrol_totp(profile, WRONG)
    assert (wrong.value.detail, wrong.value.code) == ("The current password is not correct.", "wrong-password")
    with pytest.raises(ConflictError) as not_enrolled:
        await ada.service.confirm_totp(profile, TotpCode(code="123456", password=PASSWORD))
    assert (not_enrolled.value.detail, not_enrolled.value.code) == (
        "Enrol first (POST /api/auth/totp/enrol).",
        "totp-not-enrolled",
    )
    enrolment = await ada.service.enrol_totp(profile, PASSWORD)
    assert enrolment.provisioning_uri.startswith("otpauth://totp/Proving%20Ground:ada%40example.org?secret=")
    assert enrolment.provisioning_uri.endswith("&issuer=Proving%20Ground")
    step = await ada.clock.step_with_time_left()
    await ada.service.confirm_totp(profile, TotpCode(code=code_at(enrolment.secret, step - 1), password=PASSWORD))
    with pytest.raises(ConflictError) as again:
        await ada.service.confirm_totp(profile, TotpCode(code=code_at(enrolment.secret, step), password=PASSWORD))
    assert again.value.code == "totp-not-enrolled"  # enabled already: nothing is waiting to be confirmed
    with pytest.raises(ConflictError) as enabled:
        await ada.service.enrol_totp(profile, PASSWORD)
    assert (enabled.value.detail, enabled.value.code) == (
        "TOTP is enabled already; disable it first.",
        "totp-enabled",
    )


async def test_wrong_codes_at_confirmation_lock_only_their_own_account(auth: Callable[..., Auth]) -> None:
    service = auth(failures_per_burst=2)
    await registered(service)
    await service.service.register(RegisterRequest(email="bob@example.org", password=PASSWORD, display_name="Bob"))
    await service.service.verify_email(await service.link_token())
    ada = await service.profile()
    bob_tokens = await service.service.login(LoginRequest(email="bob@example.org", password=PASSWORD), "script")
    assert isinstance(bob_tokens, TokenPair)
    bob = await service.service.authenticate(bob_tokens.access_token)
    step = int(service.clock() // STEP_SECONDS)
    ada_secret = (await service.service.enrol_totp(ada, PASSWORD)).secret
    bob_secret = (await service.service.enrol_totp(bob, PASSWORD)).secret
    wrong = "000000" if code_at(ada_secret, step) != "000000" else "111111"
    for _ in range(2):
        with pytest.raises(UnauthorizedError):
            await service.service.confirm_totp(ada, TotpCode(code=wrong, password=PASSWORD))
    with pytest.raises(LockedError):
        await service.service.confirm_totp(ada, TotpCode(code=code_at(ada_secret, step), password=PASSWORD))
    codes = await service.service.confirm_totp(bob, TotpCode(code=code_at(bob_secret, step), password=PASSWORD))
    assert len(codes.recovery_codes) == 10
    assert len(await messages(service.database, "verification")) == 2


async def test_a_confirmation_waits_for_a_change_to_the_account_under_way_and_sees_it(
    auth: Callable[..., Auth],
) -> None:
    ada = auth()
    await registered(ada)
    profile = await ada.profile()
    secret = (await ada.service.enrol_totp(profile, PASSWORD)).secret
    code = code_at(secret, int(ada.clock() // STEP_SECONDS))
    async with ada.database.engine.connect() as connection, connection.begin():
        await connection.execute(sa.text("UPDATE users SET totp_enabled = true"))  # another confirmation, say
        confirming = asyncio.create_task(ada.service.confirm_totp(profile, TotpCode(code=code, password=PASSWORD)))
        await waiting_on_a_row_lock(ada, confirming)
    with pytest.raises(ConflictError) as refused:
        await confirming
    assert refused.value.code == "totp-not-enrolled"


async def test_a_lockout_ends_when_the_oldest_failure_it_counts_leaves_the_window(auth: Callable[..., Auth]) -> None:
    ada = auth(failures_per_burst=3, burst_seconds=300, failures_per_hour=100)
    await registered(ada)
    with pytest.raises(UnauthorizedError):
        await ada.sign_in(WRONG)
    await ada.age_failures(100)
    for _ in range(2):
        with pytest.raises(UnauthorizedError):
            await ada.sign_in(WRONG)
    with pytest.raises(LockedError) as locked:
        await ada.sign_in()
    assert 195 <= locked.value.retry_after <= 200  # the first failure, 100 s old, leaves the 300 s window first


async def test_checking_the_password_before_a_change_does_not_wait_for_a_change_under_way(
    auth: Callable[..., Auth],
) -> None:
    """The account is read without a lock to check the password given: only the change itself takes the row, so
    a wrong password is refused at once, not after another change (or sign-in) holding the row has ended."""
    ada = auth()
    await registered(ada)
    profile = await ada.profile()
    change = PasswordChange(current_password=WRONG, new_password="a whole new passphrase 42")
    async with ada.database.engine.connect() as connection, connection.begin():
        await connection.execute(sa.text("SELECT id FROM users FOR UPDATE"))  # a change under way, say
        changing = asyncio.create_task(ada.service.change_password(profile, change))
        await waiting_on_a_row_lock(ada, changing)
        assert changing.done(), "the password check waited for the row"
    with pytest.raises(ForbiddenError) as refused:
        await changing
    assert refused.value.code == "wrong-password"

"""The auth rules against the service itself: a real database, no HTTP, a clock the test moves.

Lockout windows, refresh-token reuse, TOTP steps and recovery codes are decided by the service; these tests call
it as a job or script would and read the kind of each refusal, never a status code.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from app.src.api.auth.models import RegisterRequest, TokenPair, TotpChallenge, TotpCode, TotpLoginRequest
from app.src.api.auth.service import AuthPolicy
from app.src.api.common.errors import (
    AuthFailure,
    ForbiddenError,
    GoneError,
    LockedError,
    NotFoundError,
    UnauthorizedError,
)
from app.src.database.auth_repository import AuthRepository
from app.src.encryption.totp import STEP_SECONDS, code_at
from app.src.utils.logs import configure_logging
from tests.integration.auth_service_support import EMAIL, Auth, messages
from tests.integration.auth_support import PASSWORD

pytestmark = pytest.mark.integration


async def registered(auth: Auth) -> Auth:
    """Registered, and the address confirmed by the link the service wrote to the outbox."""
    await auth.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    await auth.service.verify_email(await auth.link_token())
    return auth


async def wrong_passwords(auth: Auth, count: int) -> None:
    for _ in range(count):
        with pytest.raises(UnauthorizedError) as refused:
            await auth.sign_in("not my passphrase")
        assert refused.value.reason is AuthFailure.INVALID_CREDENTIALS


async def test_the_burst_limit_locks_for_its_window_then_lets_the_right_password_in(
    auth: Callable[..., Auth],
) -> None:
    ada = await registered(auth(failures_per_burst=3, burst_seconds=300, failures_per_hour=100))
    await wrong_passwords(ada, 3)
    with pytest.raises(LockedError) as locked:
        await ada.sign_in()  # the right password changes nothing while locked
    assert 295 <= locked.value.retry_after <= 300
    await ada.age_failures(298)
    with pytest.raises(LockedError) as still:
        await ada.sign_in()
    assert still.value.retry_after <= 2  # counted on the database's clock, from the oldest counted failure
    await ada.age_failures(3)
    assert isinstance(await ada.sign_in(), TokenPair)


async def test_the_hourly_limit_locks_until_the_oldest_failure_it_counts_is_an_hour_old(
    auth: Callable[..., Auth],
) -> None:
    ada = await registered(auth(failures_per_burst=100, failures_per_hour=4))
    await wrong_passwords(ada, 4)
    with pytest.raises(LockedError) as locked:
        await ada.sign_in()
    assert 3500 < locked.value.retry_after <= 3600
    await ada.age_failures(3601)
    assert isinstance(await ada.sign_in(), TokenPair)


async def test_a_success_clears_the_failures_so_the_next_burst_starts_from_nothing(
    auth: Callable[..., Auth],
) -> None:
    ada = await registered(auth(failures_per_burst=3))
    await wrong_passwords(ada, 2)
    await ada.tokens()
    await wrong_passwords(ada, 2)
    assert isinstance(await ada.sign_in(), TokenPair)


async def test_a_reused_refresh_token_ends_its_session_and_every_token_of_it(auth: Callable[..., Auth]) -> None:
    ada = await registered(auth())
    first = await ada.tokens()
    second = await ada.service.refresh(first.refresh_token)
    assert (await ada.service.authenticate(second.access_token)).user_id == 1
    with pytest.raises(UnauthorizedError, match="used already") as reused:
        await ada.service.refresh(first.refresh_token)
    assert reused.value.reason is AuthFailure.INVALID_TOKEN
    with pytest.raises(UnauthorizedError, match="session has ended"):
        await ada.service.authenticate(second.access_token)
    with pytest.raises(UnauthorizedError):
        await ada.service.refresh(second.refresh_token)


async def enrolled(auth: Auth) -> tuple[str, list[str]]:
    """TOTP on for the account, confirmed with the code of the step before now: (secret, recovery codes)."""
    profile = await auth.profile()
    secret = (await auth.service.enrol_totp(profile, PASSWORD)).secret
    step = await auth.clock.step_with_time_left()
    codes = await auth.service.confirm_totp(profile, TotpCode(code=code_at(secret, step - 1), password=PASSWORD))
    return secret, codes.recovery_codes


async def challenge(auth: Auth) -> str:
    signed_in = await auth.sign_in()
    assert isinstance(signed_in, TotpChallenge)
    return signed_in.challenge


async def test_each_totp_step_is_accepted_once_and_never_an_earlier_one(auth: Callable[..., Auth]) -> None:
    ada = await registered(auth())
    secret, _ = await enrolled(ada)
    step = int(ada.clock() // STEP_SECONDS)

    async def answer(code: str) -> TokenPair:
        return await ada.service.login_with_totp(TotpLoginRequest(challenge=await challenge(ada), code=code), "script")

    assert isinstance(await answer(code_at(secret, step)), TokenPair)
    for replayed in (code_at(secret, step), code_at(secret, step - 1)):
        with pytest.raises(UnauthorizedError) as refused:
            await answer(replayed)
        assert refused.value.reason is AuthFailure.INVALID_CODE
    assert isinstance(await answer(code_at(secret, step + 1)), TokenPair)


async def test_each_recovery_code_works_once_whatever_its_case(auth: Callable[..., Auth]) -> None:
    ada = await registered(auth())
    _, codes = await enrolled(ada)

    async def recover(code: str) -> TokenPair:
        request = TotpLoginRequest(challenge=await challenge(ada), recovery_code=code)
        return await ada.service.login_with_totp(request, "script")

    assert isinstance(await recover(codes[0].upper()), TokenPair)
    with pytest.raises(UnauthorizedError) as spent:
        await recover(codes[0])
    assert spent.value.reason is AuthFailure.INVALID_CODE
    assert isinstance(await recover(codes[1]), TokenPair)


async def test_a_sign_in_challenge_expires_with_the_clock(auth: Callable[..., Auth]) -> None:
    ada = await registered(auth())
    secret, _ = await enrolled(ada)
    pending = await challenge(ada)
    ada.clock.advance(AuthPolicy().challenge_seconds + 1)
    code = code_at(secret, int(ada.clock() // STEP_SECONDS))
    with pytest.raises(UnauthorizedError, match="expired"):
        await ada.service.login_with_totp(TotpLoginRequest(challenge=pending, code=code), "script")


async def test_a_sign_in_from_a_new_client_sends_one_alert_a_few_an_hour_at_most(auth: Callable[..., Auth]) -> None:
    ada = await registered(auth(login_alerts_per_hour=2))
    for client_id in ("phone", "phone", "laptop", "tablet"):
        await ada.tokens(client_id)
    alerts = await messages(ada.database, "login_alert")
    assert [alert["to"] for alert in alerts] == [EMAIL, EMAIL]
    assert ["(phone)" in alerts[0]["body"], "(laptop)" in alerts[1]["body"]] == [True, True]  # not the tablet's
    assert all("Ada" not in alert["body"] for alert in alerts)  # nothing the account holder typed


@pytest.mark.usefixtures("logs_back_to_stdout")
async def test_an_alert_held_back_by_the_hourly_limit_is_logged_and_the_limit_lasts_an_hour(
    auth: Callable[..., Auth],
) -> None:
    lines = io.StringIO()
    configure_logging("INFO", "json", stream=lines)
    ada = await registered(auth(login_alerts_per_hour=1))
    await ada.tokens("phone")
    await ada.tokens("laptop")  # over the limit: logged, not sent
    assert len(await messages(ada.database, "login_alert")) == 1
    [held] = [line for line in map(json.loads, lines.getvalue().splitlines()) if line["event"].startswith("login")]
    assert (held["event"], held["logger"], held["level"]) == (
        "login alert not sent: the hourly limit is reached",
        "auth",
        "info",
    )
    assert isinstance(held["user_id"], int)
    async with ada.database.engine.begin() as connection:  # the alert was sent just over an hour ago
        await connection.execute(sa.text("UPDATE outbox SET created_at = now() - interval '61 minutes'"))
    await ada.tokens("tablet")
    assert len(await messages(ada.database, "login_alert")) == 2


async def test_an_address_is_confirmed_once_by_its_newest_link_before_it_expires(auth: Callable[..., Auth]) -> None:
    ada = auth()
    await ada.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    with pytest.raises(ForbiddenError) as unconfirmed:
        await ada.sign_in()
    assert unconfirmed.value.code == "unverified"
    token = await ada.link_token()
    ada.clock.advance(AuthPolicy().verification_seconds + 1)
    with pytest.raises(GoneError, match=r"^This link has expired\.$") as expired:
        await ada.service.verify_email(token)
    ada.clock.advance(-AuthPolicy().verification_seconds - 1)
    with pytest.raises(NotFoundError, match=r"^This link is not one of ours\.$") as forged:
        await ada.service.verify_email(token[:-4] + "AAAA")
    await ada.service.verify_email(token)
    with pytest.raises(GoneError, match=r"^This link was used already, or a newer one was sent\.$") as used:
        await ada.service.verify_email(token)
    assert (expired.value.code, forged.value.code, used.value.code) == ("link-expired", "invalid-link", "link-used")
    assert isinstance(await ada.sign_in(), TokenPair)


async def test_an_address_never_confirmed_goes_to_whoever_confirms_it_and_a_confirmed_one_stays(
    auth: Callable[..., Auth],
) -> None:
    squatter, owner = "a squatter's passphrase", "the owner's passphrase"
    ada = auth()
    await ada.service.register(RegisterRequest(email=EMAIL, password=squatter, display_name="Not Ada"))
    squatters_link = await ada.link_token()
    await ada.service.register(RegisterRequest(email=EMAIL, password=owner, display_name="Ada"))
    owners_link = await ada.link_token()
    with pytest.raises(GoneError, match="newer one"):
        await ada.service.verify_email(squatters_link)
    await ada.service.verify_email(owners_link)
    with pytest.raises(UnauthorizedError):
        await ada.sign_in(squatter)
    assert isinstance(await ada.sign_in(owner), TokenPair)

    await ada.service.register(RegisterRequest(email=EMAIL, password=squatter, display_name="Not Ada"))
    assert len(await messages(ada.database, "verification")) == 2  # a confirmed address gets no mail
    tokens = await ada.sign_in(owner)
    assert isinstance(tokens, TokenPair)
    assert (await ada.service.me(await ada.service.authenticate(tokens.access_token))).display_name == "Ada"


async def test_links_to_an_unconfirmed_address_are_sent_a_few_an_hour_at_most(auth: Callable[..., Auth]) -> None:
    ada = auth()
    for _ in range(5):
        await ada.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    assert len(await messages(ada.database, "verification")) == 3
    async with ada.database.engine.begin() as connection:  # the first of them was sent over an hour ago
        await connection.execute(sa.text(
            "UPDATE outbox SET created_at = now() - interval '61 minutes' "
            "WHERE id = (SELECT min(id) FROM outbox WHERE kind = 'verification')"
        ))  # fmt: skip
    await ada.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    assert len(await messages(ada.database, "verification")) == 4
    await ada.service.verify_email(await ada.link_token())  # the newest sent is the valid one
    assert isinstance(await ada.sign_in(), TokenPair)


async def test_registering_a_confirmed_address_between_the_check_and_the_write_changes_nothing(
    auth: Callable[..., Auth],
) -> None:
    """register() looks the address up, then writes: a confirmation may land in between. The write itself must
    leave a confirmed account as it is (its password, its name) and report no account to send a link for."""
    ada = auth()
    await ada.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    await ada.service.verify_email(await ada.link_token())
    async with ada.database.unit_of_work() as uow:
        written = await uow.repository(AuthRepository).add_user(EMAIL.upper(), "Not Ada", "not-a-hash", b"digest")
        await uow.commit()
    assert written is None
    tokens = await ada.sign_in()
    assert isinstance(tokens, TokenPair)
    assert (await ada.service.me(await ada.service.authenticate(tokens.access_token))).display_name == "Ada"


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time nine hours ahead of UTC, as on a server in Tokyo."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
async def test_a_session_ends_when_its_lifetime_says_whatever_the_servers_time_zone(auth: Callable[..., Auth]) -> None:
    ada = auth()
    await ada.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    await ada.service.verify_email(await ada.link_token())
    await ada.sign_in()
    async with ada.database.reading() as connection:
        left = await connection.fetchval("SELECT extract(epoch FROM expires_at - now()) FROM sessions")
    assert abs(float(left) - AuthPolicy().session_seconds) < 60

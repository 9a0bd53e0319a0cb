"""The auth rules: accounts, sign-in with lockout, TOTP, sessions with rotating refresh tokens."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.src.api.auth.attempts import AttemptLimits, login_subject, second_factor_subject
from app.src.api.auth.challenges import Challenge, new_challenge, open_challenge, password_fingerprint
from app.src.api.auth.messages import LOGIN_ALERT, VERIFICATION_MAIL, login_alert, verification_email
from app.src.api.auth.models import (
    Accepted,
    LoginRequest,
    Me,
    PasswordChange,
    RecoveryCodes,
    RegisterRequest,
    SessionInfo,
    Sessions,
    TokenPair,
    TotpChallenge,
    TotpCode,
    TotpEnrolment,
    TotpLoginRequest,
)
from app.src.api.auth.password_policy import password_problem
from app.src.api.common.errors import (
    AuthFailure,
    ConflictError,
    FieldProblem,
    ForbiddenError,
    GoneError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from app.src.api.messaging.outbox import Outbox
from app.src.database.auth_reads import live_session, user_profile
from app.src.database.auth_repository import AuthRepository, User
from app.src.database.outbox import OutboxRepository
from app.src.encryption import totp
from app.src.encryption.opaque import digest, new_recovery_codes, new_refresh_token
from app.src.encryption.passwords import PasswordHasher
from app.src.encryption.tokens import InvalidTokenError, TokenKeyRing
from app.src.resilience.lifo_slots import lend_slot
from app.src.utils.bounded_threads import ThreadsBusyError
from app.src.utils.logs import module_logger

if TYPE_CHECKING:
    from app.database import Database

ACCESS, TOTP_SECRET, VERIFICATION = "access", "totp-secret", "verify-email"
LINKS_PER_HOUR = 3  # confirmation links mailed to one address in an hour
_log = module_logger("auth")


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    access_token_seconds: int = 15 * 60
    session_seconds: int = 30 * 24 * 3600
    challenge_seconds: int = 5 * 60
    failures_per_hour: int = 100
    failures_per_burst: int = 10
    burst_seconds: int = 5 * 60
    totp_issuer: str = "Proving Ground"
    verification_seconds: int = 24 * 3600
    login_alerts_per_hour: int = 3
    public_url: str = "https://localhost:8443"  # where the links in messages point


@dataclass(frozen=True, slots=True)
class Profile:
    """Who is calling: bound by the authentication step for the routes that need it."""

    user_id: int
    roles: tuple[str, ...]
    session_id: uuid.UUID


def _invalid_token(detail: str) -> UnauthorizedError:
    return UnauthorizedError(detail, AuthFailure.INVALID_TOKEN)


def _invalid_credentials() -> UnauthorizedError:
    # One answer for an unknown address and a wrong password alike.
    return UnauthorizedError("The e-mail address or the password is not correct.", AuthFailure.INVALID_CREDENTIALS)


def _invalid_code() -> UnauthorizedError:
    return UnauthorizedError("The code is not valid.", AuthFailure.INVALID_CODE)


def _too_many_at_once() -> UnavailableError:
    return UnavailableError(
        "Too many passwords are being checked at once; try again in a moment.", 1, code="overloaded"
    )


def _weak_password(detail: str, field: str) -> InvalidInputError:
    return InvalidInputError(detail, [FieldProblem((field,), detail, "password_policy")])


class AuthService:
    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        ring: TokenKeyRing,
        policy: AuthPolicy,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._ring = ring
        self.policy = policy
        self._outbox = outbox
        self._clock = clock
        self._attempts = AttemptLimits(policy.failures_per_hour, policy.failures_per_burst, policy.burst_seconds)

    # Argon2 runs on the hashing threads, bounded by their own pool: the request lends its inbound slot meanwhile.
    async def _hash(self, password: str) -> str:
        try:
            async with lend_slot():
                return await self._hasher.hash(password)
        except ThreadsBusyError:
            raise _too_many_at_once() from None

    async def _verify(self, password: str, encoded: str | None) -> bool:
        try:
            async with lend_slot():
                return await self._hasher.verify(password, encoded)
        except ThreadsBusyError:
            raise _too_many_at_once() from None

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    # accounts and sign-in

    async def register(self, request: RegisterRequest) -> Accepted:
        """A new account, unverified, and a link to its address; the same answer for an address that is taken.

        An address never confirmed can be registered again: whoever can open its mail confirms it, so nobody can
        hold an address they cannot read; the account takes the new password and only the newest link is valid
        (this is also how a lost link is sent again), a few times an hour at most. A confirmed address is left as
        it is, and gets no mail."""
        if problem := password_problem(request.password, request.email):
            raise _weak_password(problem, "password")
        async with self._database.unit_of_work() as uow:  # before any effect, even the hashing
            await self._outbox.admit(uow.repository(OutboxRepository))
        password_hash = await self._hash(request.password)
        nonce = new_refresh_token()
        async with self._database.unit_of_work() as uow:
            repository, messages = uow.repository(AuthRepository), uow.repository(OutboxRepository)
            if await self._may_send_a_link(repository, messages, request.email):
                user_id = await repository.add_user(request.email, request.display_name, password_hash, digest(nonce))
                if user_id is not None:
                    link = self._verification_link(user_id, nonce)
                    await self._outbox.add(messages, verification_email(user_id, request.email, link, nonce[:16]))
                await uow.commit()
        return Accepted(detail="If the address can be registered, a link to confirm it is on its way.")

    async def _may_send_a_link(self, repository: AuthRepository, messages: OutboxRepository, email: str) -> bool:
        """False for an address confirmed already, or sent LINKS_PER_HOUR links in the past hour."""
        user = await repository.user_by_email(email)
        if user is None:
            return True
        if user.email_verified_at is not None:
            return False
        sent = await self._outbox.sent_recently(messages, f"user:{user.id}", VERIFICATION_MAIL, dt.timedelta(hours=1))
        return sent < LINKS_PER_HOUR

    def _verification_link(self, user_id: int, nonce: str) -> str:
        expires = int(self._clock()) + self.policy.verification_seconds
        token = self._ring.seal(VERIFICATION, {"uid": user_id, "n": nonce, "exp": expires})
        return f"{self.policy.public_url}/links/verify-email?token={token}"

    async def verify_email(self, token: str) -> None:
        """Follow a verification link: once, before it expires, and only the latest one sent."""
        try:
            claims = self._ring.open(VERIFICATION, token)
            user_id, nonce, expires = int(claims["uid"]), str(claims["n"]), int(claims["exp"])
        except (InvalidTokenError, KeyError, TypeError, ValueError):
            raise NotFoundError("This link is not one of ours.", code="invalid-link") from None
        if expires < self._clock():
            raise GoneError("This link has expired.", code="link-expired")
        async with self._database.unit_of_work() as uow:
            verified = await uow.repository(AuthRepository).verify_email(user_id, digest(nonce))
            await uow.commit()
        if not verified:
            raise GoneError("This link was used already, or a newer one was sent.", code="link-used")

    async def put_verified_account(
        self, email: str, display_name: str, password: str, *, totp_on: bool | None = None
    ) -> tuple[int, str | None]:
        """For operators (`python -m app users create`): an account with this address, verified, with this password;
        with `totp_on`, TOTP on with a new secret (returned) or off; unchanged when None."""
        if problem := password_problem(password, email):
            raise _weak_password(problem, "password")
        password_hash = await self._hash(password)
        secret = totp.new_secret() if totp_on else None
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            user_id = await repository.put_verified_user(email, display_name, password_hash)
            if totp_on is not None:
                sealed = None if secret is None else self._ring.seal(TOTP_SECRET, {"secret": secret})
                await repository.set_totp(user_id, secret=sealed, enabled=totp_on, last_step=None)
            await uow.commit()
        return user_id, secret

    async def login(self, request: LoginRequest, client_id: str) -> TokenPair | TotpChallenge:
        subject = login_subject(request.email)
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            await self._attempts.admit(repository, subject)
            user = await repository.user_by_email(request.email)
            await uow.commit()
        # An unknown address is checked against a dummy hash, so that it takes as long as a known one.
        verified = await self._verify(request.password, None if user is None else user.password_hash)
        if not verified or user is None:
            raise _invalid_credentials()
        if user.email_verified_at is None:  # said only to whom knows the password
            await self._forget_failures(subject)
            raise ForbiddenError("Confirm your e-mail address first: open the link sent to it.", code="unverified")
        if self._hasher.needs_rehash(user.password_hash):
            user = await self._rehash(user, request.password)
        if user.totp_enabled:
            await self._forget_failures(subject)
            expires = int(self._clock()) + self.policy.challenge_seconds
            challenge = new_challenge(user.id, client_id, user.password_hash, expires)
            return TotpChallenge(challenge=challenge.seal(self._ring), expires_in=self.policy.challenge_seconds)
        return await self._start_session(user, client_id, succeeded=subject)

    async def _rehash(self, user: User, password: str) -> User:
        """The hash was made with other Argon2 parameters (older, weaker): redo it now that the password is known."""
        password_hash = await self._hash(password)
        async with self._database.unit_of_work() as uow:
            await uow.repository(AuthRepository).set_password(user.id, password_hash)
            await uow.commit()
        return dataclasses.replace(user, password_hash=password_hash)

    async def login_with_totp(self, request: TotpLoginRequest, client_id: str) -> TokenPair:
        challenge = open_challenge(self._ring, request.challenge, client_id, self._clock())
        user = await self._check_second_factor(challenge.user_id, request.code, request.recovery_code, challenge)
        return await self._start_session(user, client_id)

    async def _check_second_factor(
        self, user_id: int, code: str | None, recovery_code: str | None, challenge: Challenge | None = None
    ) -> User:
        """The account's TOTP code or one of its recovery codes, counted against its lockout; with a sign-in
        challenge, that challenge too: given for the password the account has now, and answered only once."""
        subject = second_factor_subject(user_id)
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            user = await repository.user_by_id(user_id, for_update=True)  # one attempt on the account at a time
            if challenge is not None and (
                user is None or password_fingerprint(user.password_hash) != challenge.password
            ):
                raise _invalid_token("The sign-in challenge is no longer valid; sign in again.")
            if user is None or not user.totp_enabled or user.totp_secret is None:
                raise _invalid_code()
            await self._attempts.admit(repository, subject)
            if not await self._second_factor_matches(repository, user, code, recovery_code):
                await uow.commit()  # the failure stays counted
                raise _invalid_code()
            if challenge is not None and not await repository.spend_challenge(challenge.digest, _at(challenge.expires)):
                raise _invalid_token("The sign-in challenge was answered already; sign in again.")
            await self._attempts.succeeded(repository, subject)
            await uow.commit()
        return user

    async def _second_factor_matches(
        self, repository: AuthRepository, user: User, code: str | None, recovery_code: str | None
    ) -> bool:
        if code is not None:
            return await self._use_code(repository, user, code)
        if recovery_code is not None:
            return await repository.use_recovery_code(user.id, digest(recovery_code.strip().lower()))
        return False

    async def _use_code(self, repository: AuthRepository, user: User, code: str) -> bool:
        """A TOTP code of ±1 step, each step accepted once (the last one used is stored)."""
        if user.totp_secret is None:
            return False
        try:
            secret = str(self._ring.open(TOTP_SECRET, user.totp_secret)["secret"])
        except InvalidTokenError:
            # Sealed with a key no longer in TOKEN_KEYS: no code can be checked; a recovery code still works.
            _log.error("TOTP secret sealed with a removed key", user_id=user.id)
            return False
        step = totp.matching_step(secret, code, self._clock())
        return step is not None and await repository.use_totp_step(user.id, step)

    async def _start_session(self, user: User, client_id: str, succeeded: bytes | None = None) -> TokenPair:
        """A new session; `succeeded`: the subject whose failures the sign-in takes back, in the same transaction."""
        refresh_token = new_refresh_token()
        expires_at = self._now() + dt.timedelta(seconds=self.policy.session_seconds)
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            if succeeded is not None:
                await self._attempts.succeeded(repository, succeeded)
            session_id = await repository.add_session(user.id, client_id, expires_at)
            await repository.add_refresh_token(session_id, digest(refresh_token))
            if await repository.remember_client(user.id, client_id):
                await self._alert(uow.repository(OutboxRepository), user, client_id, session_id)
            await uow.commit()
        return self._token_pair(session_id, refresh_token)

    async def _alert(self, outbox: OutboxRepository, user: User, client_id: str, session_id: uuid.UUID) -> None:
        """A sign-in from a client the account has not used: an alert to a verified address, a few an hour at most,
        best effort (a full outbox neither fails nor delays the sign-in)."""
        about = f"user:{user.id}"
        if user.email_verified_at is None:
            return
        if await self._outbox.sent_recently(outbox, about, LOGIN_ALERT, dt.timedelta(hours=1)) >= (
            self.policy.login_alerts_per_hour
        ):
            _log.info("login alert not sent: the hourly limit is reached", user_id=user.id)
            return
        await self._outbox.offer(outbox, login_alert(user.id, user.email, client_id, session_id))

    def _token_pair(self, session_id: uuid.UUID, refresh_token: str) -> TokenPair:
        """The session's id is all an access token carries: every request finds the account through its live
        session, so an ended session ends its access tokens too."""
        expires = int(self._clock()) + self.policy.access_token_seconds
        return TokenPair(
            access_token=self._ring.seal(ACCESS, {"sid": str(session_id), "exp": expires}),
            expires_in=self.policy.access_token_seconds,
            refresh_token=refresh_token,
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            found = await repository.use_refresh_token(digest(refresh_token))
            if found is None:
                raise _invalid_token("The refresh token is not valid.")
            session_id, first_use = found
            if not first_use:
                # A rotated token came back: whoever holds it may have stolen it. End the whole session.
                await repository.revoke_session(session_id, "refresh token reused")
                await uow.commit()
                raise _invalid_token("The refresh token was used already; the session is ended.")
            if await repository.live_session_owner(session_id) is None:
                await uow.commit()
                raise _invalid_token("The session has ended; sign in again.")
            rotated = new_refresh_token()
            await repository.add_refresh_token(session_id, digest(rotated))
            await repository.touch_session(session_id)
            await uow.commit()
        return self._token_pair(session_id, rotated)

    # failed attempts

    async def _forget_failures(self, subject: bytes) -> None:
        async with self._database.unit_of_work() as uow:
            await self._attempts.succeeded(uow.repository(AuthRepository), subject)
            await uow.commit()

    async def _reauthenticate(self, user: User, password: str) -> None:
        """The account's current password, asked again before a change to how it signs in: a stolen access
        token alone must not add a second factor, take one away or set a new password. A wrong one counts as a
        failed sign-in."""
        subject = login_subject(user.email)
        async with self._database.unit_of_work() as uow:
            await self._attempts.admit(uow.repository(AuthRepository), subject)
            await uow.commit()
        if not await self._verify(password, user.password_hash):
            raise ForbiddenError("The current password is not correct.", code="wrong-password")
        await self._forget_failures(subject)

    # the signed-in caller

    async def authenticate(self, access_token: str) -> Profile:
        try:
            claims = self._ring.open(ACCESS, access_token)
            session_id = uuid.UUID(str(claims["sid"]))
            expires = int(claims["exp"])
        except (InvalidTokenError, KeyError, ValueError, TypeError):
            raise _invalid_token("The access token is not valid.") from None
        if expires <= self._clock():
            raise _invalid_token("The access token has expired.")
        session = await self._database.read(lambda connection: live_session(connection, session_id))
        if session is None:
            raise _invalid_token("The session has ended; sign in again.")
        return Profile(session.user_id, session.roles, session_id)

    async def me(self, profile: Profile) -> Me:
        user = await self._database.read(lambda connection: user_profile(connection, profile.user_id))
        if user is None:
            raise _invalid_token("The account is gone.")
        return Me(
            id=user.id, email=user.email, display_name=user.display_name, roles=list(user.roles),
            totp_enabled=user.totp_enabled,
        )  # fmt: skip

    async def _user(self, profile: Profile) -> User:
        async with self._database.unit_of_work() as uow:
            user = await uow.repository(AuthRepository).user_by_id(profile.user_id)
        if user is None:
            raise _invalid_token("The account is gone.")
        return user

    async def logout(self, profile: Profile, everywhere: bool = False) -> None:
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            if everywhere:
                await repository.revoke_sessions(profile.user_id, "logout everywhere")
            else:
                await repository.revoke_session(profile.session_id, "logout")
            await uow.commit()

    async def sessions(self, profile: Profile) -> Sessions:
        async with self._database.unit_of_work() as uow:
            rows = await uow.repository(AuthRepository).live_sessions(profile.user_id)
        return Sessions(
            sessions=[
                SessionInfo(
                    id=row.id,
                    client_id=row.client_id,
                    created_at=row.created_at,
                    last_used_at=row.last_used_at,
                    current=row.id == profile.session_id,
                )
                for row in rows
            ]
        )

    async def revoke(self, profile: Profile, session_id: uuid.UUID) -> None:
        async with self._database.unit_of_work() as uow:
            revoked = await uow.repository(AuthRepository).revoke_sessions(profile.user_id, "revoked", only=session_id)
            await uow.commit()
        if not revoked:
            raise NotFoundError("There is no such session of yours.")

    async def change_password(self, profile: Profile, request: PasswordChange) -> None:
        user = await self._user(profile)
        await self._reauthenticate(user, request.current_password)
        if problem := password_problem(request.new_password, user.email):
            raise _weak_password(problem, "new_password")
        password_hash = await self._hash(request.new_password)
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            await repository.set_password(user.id, password_hash)
            await repository.revoke_sessions(user.id, "password changed", keep=profile.session_id)
            await uow.commit()

    # TOTP

    async def enrol_totp(self, profile: Profile, password: str) -> TotpEnrolment:
        user = await self._user(profile)
        await self._reauthenticate(user, password)
        if user.totp_enabled:
            raise ConflictError("TOTP is enabled already; disable it first.", code="totp-enabled")
        secret = totp.new_secret()
        async with self._database.unit_of_work() as uow:
            sealed = self._ring.seal(TOTP_SECRET, {"secret": secret})
            await uow.repository(AuthRepository).set_totp(user.id, secret=sealed, enabled=False, last_step=None)
            await uow.commit()
        uri = totp.provisioning_uri(secret, user.email, self.policy.totp_issuer)
        return TotpEnrolment(provisioning_uri=uri, secret=secret)

    async def confirm_totp(self, profile: Profile, request: TotpCode) -> RecoveryCodes:
        await self._reauthenticate(await self._user(profile), request.password)
        subject = second_factor_subject(profile.user_id)
        codes = new_recovery_codes()
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            user = await repository.user_by_id(profile.user_id, for_update=True)  # one attempt at a time
            if user is None or user.totp_enabled or user.totp_secret is None:
                raise ConflictError("Enrol first (POST /api/auth/totp/enrol).", code="totp-not-enrolled")
            await self._attempts.admit(repository, subject)
            if not await self._use_code(repository, user, request.code):
                await uow.commit()  # the failure stays counted
                raise _invalid_code()
            await repository.enable_totp(user.id)
            await repository.replace_recovery_codes(user.id, [digest(recovery) for recovery in codes])
            await self._attempts.succeeded(repository, subject)
            await uow.commit()
        return RecoveryCodes(recovery_codes=codes)

    async def disable_totp(self, profile: Profile, request: TotpCode) -> None:
        await self._reauthenticate(await self._user(profile), request.password)
        await self._check_second_factor(profile.user_id, request.code, None)
        async with self._database.unit_of_work() as uow:
            repository = uow.repository(AuthRepository)
            await repository.set_totp(profile.user_id, secret=None, enabled=False, last_step=None)
            await repository.replace_recovery_codes(profile.user_id, [])
            await uow.commit()


def _at(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)

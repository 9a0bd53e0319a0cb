"""SQL for accounts, sessions, refresh tokens, login failures, recovery codes and known clients."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.src.database.auth_tables import (
    known_clients,
    login_failures,
    recovery_codes,
    refresh_tokens,
    sessions,
    spent_challenges,
    users,
)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    display_name: str
    password_hash: str
    roles: list[str]
    totp_secret: str | None
    totp_enabled: bool
    totp_last_step: int | None
    email_verified_at: dt.datetime | None


def _user(row: sa.Row[tuple[object, ...]] | None) -> User | None:
    return None if row is None else User(**row._mapping)


_USER_COLUMNS = [
    users.c.id, users.c.email, users.c.display_name, users.c.password_hash, users.c.roles,
    users.c.totp_secret, users.c.totp_enabled, users.c.totp_last_step, users.c.email_verified_at,
]  # fmt: skip


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # accounts

    async def add_user(self, email: str, display_name: str, password_hash: str, verification: bytes) -> int | None:
        """The unverified user's id (`verification`: the digest of its one valid link): a new account, or one whose
        address was never confirmed, now with this password and name and only this link; None when the address
        belongs to a verified account (compared without case)."""
        statement = (
            insert(users)
            .values(email=email, display_name=display_name, password_hash=password_hash, roles=["user"],
                    verification_digest=verification)
            .on_conflict_do_update(
                index_elements=[sa.text("lower(email)")],
                set_={"display_name": display_name, "password_hash": password_hash,
                      "verification_digest": verification},
                where=users.c.email_verified_at.is_(None),
            )
            .returning(users.c.id)
        )  # fmt: skip
        user_id: int | None = (await self.session.execute(statement)).scalar_one_or_none()
        return user_id

    async def verify_email(self, user_id: int, verification: bytes) -> bool:
        """Mark the address verified if `verification` is its one valid link; False otherwise (used, superseded)."""
        statement = (
            sa.update(users)
            .where(users.c.id == user_id, users.c.verification_digest == verification)
            .values(email_verified_at=sa.func.now(), verification_digest=None)
            .returning(users.c.id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def put_verified_user(self, email: str, display_name: str, password_hash: str) -> int:
        """An account with this address, verified, with this password and name, made or brought to that state."""
        statement = (
            insert(users)
            .values(email=email, display_name=display_name, password_hash=password_hash, roles=["user"],
                    email_verified_at=sa.func.now())
            .on_conflict_do_update(
                index_elements=[sa.text("lower(email)")],
                set_={"display_name": display_name, "password_hash": password_hash,
                      "email_verified_at": sa.func.coalesce(users.c.email_verified_at, sa.func.now()),
                      "verification_digest": None},
            )
            .returning(users.c.id)
        )  # fmt: skip
        return int((await self.session.execute(statement)).scalar_one())

    async def user_by_email(self, email: str) -> User | None:
        statement = sa.select(*_USER_COLUMNS).where(sa.func.lower(users.c.email) == email.lower())
        return _user((await self.session.execute(statement)).first())

    async def user_by_id(self, user_id: int, *, for_update: bool = False) -> User | None:
        statement = sa.select(*_USER_COLUMNS).where(users.c.id == user_id)
        if for_update:
            statement = statement.with_for_update()
        return _user((await self.session.execute(statement)).first())

    async def set_password(self, user_id: int, password_hash: str) -> None:
        await self.session.execute(sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash))

    async def set_totp(self, user_id: int, *, secret: str | None, enabled: bool, last_step: int | None) -> None:
        values = {"totp_secret": secret, "totp_enabled": enabled, "totp_last_step": last_step}
        await self.session.execute(sa.update(users).where(users.c.id == user_id).values(**values))

    async def enable_totp(self, user_id: int) -> None:
        await self.session.execute(sa.update(users).where(users.c.id == user_id).values(totp_enabled=True))

    async def use_totp_step(self, user_id: int, step: int) -> bool:
        """Record `step` as used; False when it (or a later one) was used already: a replay."""
        statement = (
            sa.update(users)
            .where(users.c.id == user_id)
            .where(sa.or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step))
            .values(totp_last_step=step)
            .returning(users.c.id)
        )
        return (await self.session.execute(statement)).first() is not None

    # login failures

    async def lock_subject(self, subject: bytes) -> None:
        """Until this transaction ends, other attempts on `subject` wait here: checking the lockout and counting
        the attempt happen one attempt at a time."""
        key = int.from_bytes(subject[:8], "big", signed=True)
        await self.session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    async def record_failure(self, subject: bytes) -> None:
        await self.session.execute(sa.insert(login_failures).values(subject=subject))

    async def lockout_seconds(self, subject: bytes, limits: Sequence[tuple[int, int]]) -> float:
        """Seconds until `subject` may try again (0: now), on the database's clock: for each (failures, window in
        seconds), once `failures` fell within the window, until the oldest of them leaves it."""
        waits = [sa.func.extract("epoch", self._nth_newest(subject, count, window)) for count, window in limits]
        row = (await self.session.execute(sa.select(*waits))).one()
        return max([0.0, *(float(wait) for wait in row if wait is not None)])

    @staticmethod
    def _nth_newest(subject: bytes, count: int, window: int) -> Any:
        """When the `count`-th newest failure within `window` seconds leaves the window, minus now (or NULL)."""
        length = sa.func.make_interval(0, 0, 0, 0, 0, 0, window)
        failed_at = (
            sa.select(login_failures.c.failed_at)
            .where(login_failures.c.subject == subject, login_failures.c.failed_at > sa.func.now() - length)
            .order_by(login_failures.c.failed_at.desc())
            .offset(count - 1)
            .limit(1)
            .scalar_subquery()
        )
        return failed_at + length - sa.func.now()

    async def clear_failures(self, subject: bytes) -> None:
        await self.session.execute(sa.delete(login_failures).where(login_failures.c.subject == subject))

    # sessions and refresh tokens

    async def add_session(self, user_id: int, client_id: str, expires_at: dt.datetime) -> uuid.UUID:
        session_id = uuid.uuid4()
        values = {"id": session_id, "user_id": user_id, "client_id": client_id, "expires_at": expires_at}
        await self.session.execute(sa.insert(sessions).values(**values))
        return session_id

    async def add_refresh_token(self, session_id: uuid.UUID, digest: bytes) -> None:
        await self.session.execute(sa.insert(refresh_tokens).values(digest=digest, session_id=session_id))

    async def use_refresh_token(self, digest: bytes) -> tuple[uuid.UUID, bool] | None:
        """(session id, first use?) of a refresh token; None if it was never issued. Marking it used is atomic, so
        of two concurrent uses exactly one is the first."""
        used = (
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.digest == digest, refresh_tokens.c.used_at.is_(None))
            .values(used_at=sa.func.now())
            .returning(refresh_tokens.c.session_id)
        )
        session_id = (await self.session.execute(used)).scalar_one_or_none()
        if session_id is not None:
            return session_id, True
        known = sa.select(refresh_tokens.c.session_id).where(refresh_tokens.c.digest == digest)
        session_id = (await self.session.execute(known)).scalar_one_or_none()
        return None if session_id is None else (session_id, False)

    async def live_session_owner(self, session_id: uuid.UUID) -> int | None:
        statement = sa.select(sessions.c.user_id).where(
            sessions.c.id == session_id, sessions.c.revoked_at.is_(None), sessions.c.expires_at > sa.func.now()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def touch_session(self, session_id: uuid.UUID) -> None:
        statement = sa.update(sessions).where(sessions.c.id == session_id).values(last_used_at=sa.func.now())
        await self.session.execute(statement)

    async def revoke_sessions(
        self, user_id: int, reason: str, *, only: uuid.UUID | None = None, keep: uuid.UUID | None = None
    ) -> int:
        statement = sa.update(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        if only is not None:
            statement = statement.where(sessions.c.id == only)
        if keep is not None:
            statement = statement.where(sessions.c.id != keep)
        result = await self.session.execute(statement.values(revoked_at=sa.func.now(), revoked_reason=reason))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_session(self, session_id: uuid.UUID, reason: str) -> None:
        statement = sa.update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        await self.session.execute(statement.values(revoked_at=sa.func.now(), revoked_reason=reason))

    async def live_sessions(self, user_id: int) -> Sequence[Any]:
        statement = (
            sa.select(sessions.c.id, sessions.c.client_id, sessions.c.created_at, sessions.c.last_used_at)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .where(sessions.c.expires_at > sa.func.now())
            .order_by(sessions.c.created_at.desc())
        )
        return (await self.session.execute(statement)).all()

    async def spend_challenge(self, digest: bytes, expires_at: dt.datetime) -> bool:
        """Record a sign-in challenge as answered; False when it was answered before."""
        statement = (
            insert(spent_challenges)
            .values(digest=digest, expires_at=expires_at)
            .on_conflict_do_nothing()
            .returning(spent_challenges.c.digest)
        )
        return (await self.session.execute(statement)).first() is not None

    # recovery codes and known clients

    async def replace_recovery_codes(self, user_id: int, digests: list[bytes]) -> None:
        await self.session.execute(sa.delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        if digests:
            rows = [{"digest": digest, "user_id": user_id} for digest in digests]
            await self.session.execute(sa.insert(recovery_codes), rows)

    async def use_recovery_code(self, user_id: int, digest: bytes) -> bool:
        statement = (
            sa.update(recovery_codes)
            .where(recovery_codes.c.user_id == user_id, recovery_codes.c.digest == digest)
            .where(recovery_codes.c.used_at.is_(None))
            .values(used_at=sa.func.now())
            .returning(recovery_codes.c.digest)
        )
        return (await self.session.execute(statement)).first() is not None

    async def remember_client(self, user_id: int, client_id: str) -> bool:
        """True when this client id is new for the user."""
        statement = (
            insert(known_clients)
            .values(user_id=user_id, client_id=client_id)
            .on_conflict_do_nothing()
            .returning(known_clients.c.client_id)
        )
        return (await self.session.execute(statement)).first() is not None

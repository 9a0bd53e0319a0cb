"""The reads of an authenticated request, on a plain asyncpg connection (app/src/database/read_pool.py): SQL that
asyncpg prepares once per connection, rows read by position into small frozen records, no ORM in between."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

_LIVE_SESSION = (
    "SELECT s.user_id, u.roles FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
)
_PROFILE = "SELECT id, email, display_name, roles, totp_enabled FROM users WHERE id = $1"


@dataclass(frozen=True, slots=True)
class LiveSession:
    user_id: int
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserProfile:
    id: int
    email: str
    display_name: str
    roles: tuple[str, ...]
    totp_enabled: bool


async def live_session(connection: asyncpg.Connection, session_id: uuid.UUID) -> LiveSession | None:
    """The hot read of every authenticated request: is the session live, and whose is it."""
    row = await connection.fetchrow(_LIVE_SESSION, session_id)
    return None if row is None else LiveSession(row[0], tuple(row[1]))


async def user_profile(connection: asyncpg.Connection, user_id: int) -> UserProfile | None:
    row = await connection.fetchrow(_PROFILE, user_id)
    return None if row is None else UserProfile(row[0], row[1], row[2], tuple(row[3]), row[4])

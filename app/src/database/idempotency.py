"""The idempotency_keys table (migration 0007) and its SQL, on plain asyncpg: a key claimed by one request at a
time (a lease, so that a request that died lets the retry take over), the resource it made, its answer once
complete."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    operation: str
    fingerprint: bytes
    locked_for: float | None  # seconds the lease has left; None once complete
    recovery_point: str
    resource_id: str | None
    response_status: int | None
    response_headers: bytes | None
    response_body: bytes | None


async def insert(
    connection: asyncpg.Connection, user_id: int, client_id: str, key: str, operation: str, fingerprint: bytes,
    lease_seconds: float,
) -> int | None:  # fmt: skip
    """A new key, leased to the caller; None when the key exists already."""
    key_id: int | None = await connection.fetchval(
        "INSERT INTO idempotency_keys (user_id, client_id, key, operation, fingerprint, locked_until) "
        "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) "
        "ON CONFLICT (user_id, client_id, key) DO NOTHING RETURNING id",
        user_id, client_id, key, operation, fingerprint, lease_seconds,
    )  # fmt: skip
    return key_id


async def take_over(connection: asyncpg.Connection, key_id: int, lease_seconds: float) -> bool:
    """Lease an incomplete key whose lease ran out (its request ended without an answer to keep)."""
    taken = await connection.fetchval(
        "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $2) "
        "WHERE id = $1 AND response_status IS NULL AND locked_until <= now() RETURNING true",
        key_id, lease_seconds,
    )  # fmt: skip
    return bool(taken)


async def find(connection: asyncpg.Connection, user_id: int, client_id: str, key: str) -> KeyRow | None:
    row = await connection.fetchrow(
        "SELECT id, operation, fingerprint, extract(epoch FROM locked_until - now())::float8, recovery_point, "
        "resource_id, response_status, response_headers, response_body "
        "FROM idempotency_keys WHERE user_id = $1 AND client_id = $2 AND key = $3",
        user_id, client_id, key,
    )  # fmt: skip
    return None if row is None else KeyRow(*row)


async def remember(connection: asyncpg.Connection, key_id: int, resource_id: str, recovery_point: str) -> None:
    """In the transaction of the phase that made it: what the request made, and where a retry resumes."""
    await connection.execute(
        "UPDATE idempotency_keys SET resource_id = $2, recovery_point = $3 WHERE id = $1",
        key_id, resource_id, recovery_point,
    )  # fmt: skip


async def complete(connection: asyncpg.Connection, key_id: int, status: int, headers: bytes, body: bytes) -> None:
    await connection.execute(
        "UPDATE idempotency_keys SET response_status = $2, response_headers = $3, response_body = $4, "
        "locked_until = NULL, recovery_point = 'finished' WHERE id = $1",
        key_id, status, headers, body,
    )  # fmt: skip


async def release(connection: asyncpg.Connection, key_id: int) -> None:
    """The request ends without an answer to keep: a retry may take the key over at once and resume."""
    await connection.execute(
        "UPDATE idempotency_keys SET locked_until = now() WHERE id = $1 AND response_status IS NULL", key_id
    )

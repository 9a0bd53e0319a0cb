"""The floor for `make bench-read`: a minimal Quart app running the same two reads as GET /api/auth/me with plain
asyncpg (the live-session join, then the user row), on a pool of 10; the session id comes from the environment,
so it neither opens a token nor checks a header."""

from __future__ import annotations

import os
import uuid

import asyncpg
from quart import Quart

app = Quart(__name__)
SESSION_ID = uuid.UUID(os.environ["BENCH_SESSION_ID"])
pool: asyncpg.Pool | None = None


@app.before_serving
async def open_pool() -> None:
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DB_URI"], min_size=10, max_size=10)


@app.get("/api/auth/me")
async def me() -> dict[str, object]:
    assert pool is not None  # noqa: S101 - opened before serving
    async with pool.acquire() as connection:
        session = await connection.fetchrow(
            "SELECT s.user_id, u.roles FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()",
            SESSION_ID,
        )
    async with pool.acquire() as connection:
        user = await connection.fetchrow(
            "SELECT id, email, display_name, roles, totp_enabled FROM users WHERE id = $1", session["user_id"]
        )
    return {"id": user["id"], "email": user["email"], "display_name": user["display_name"],
            "roles": list(user["roles"]), "totp_enabled": user["totp_enabled"]}  # fmt: skip

"""What the benchmarks' minimal apps need from a signed-in account: its session, and a wrk script carrying its
token (the floors check the session by id, as the full stack does after opening the token)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg


def latest_session(database_uri: str) -> str:
    """The id of the newest session: the one the benchmark just signed in with."""

    async def latest() -> str:
        connection = await asyncpg.connect(database_uri)
        try:
            return str(await connection.fetchval("SELECT id FROM sessions ORDER BY created_at DESC LIMIT 1"))
        finally:
            await connection.close()

    return asyncio.run(latest())


def bearer_script(token: str, path: Path) -> Path:
    """A wrk script sending the token and the client id on every request."""
    path.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\nwrk.headers["X-Client-Id"] = "bench"\n')
    return path

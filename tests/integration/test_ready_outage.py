"""Readiness follows the database: 503 while PostgreSQL is down, 200 again once it is back, no restart needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from app import create_app
from app.runtime.migrations import upgrade
from app.settings import Settings
from tests.support.postgres import HEAD
from tests.support.private_postgres import private_postgres

READY = "/api/common/ready"


async def test_ready_turns_503_while_postgres_is_stopped_and_200_when_it_returns(
    settings: Settings, tmp_path: Path
) -> None:
    with private_postgres(tmp_path / "pg") as postgres:
        await upgrade(postgres.uri)
        app = create_app(
            settings.model_copy(
                update={"db_uri": SecretStr(postgres.uri), "ready_timeout": 2.0, "ready_cache_seconds": 0.0}
            )
        )
        async with app.test_app() as serving:
            client = serving.test_client()
            assert (await client.get(READY)).status_code == 200

            await asyncio.to_thread(postgres.stop)
            down = await client.get(READY)
            assert down.status_code == 503
            assert down.headers["Content-Type"] == "application/problem+json"
            assert (await down.get_json())["detail"] == "The database is not reachable."

            await asyncio.to_thread(postgres.start)
            # The failed check invalidated the pool's connections to the old server, so the first check
            # after the restart already runs on a fresh connection.
            back = await client.get(READY)
            assert back.status_code == 200
            assert await back.get_json() == {"status": "ready", "schema_revision": HEAD}

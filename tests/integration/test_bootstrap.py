"""The composition root without Quart: opened by a plain script, a service called, everything closed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from sqlalchemy import make_url

from app.bootstrap import open_services
from app.settings import Settings
from app.src.api.auth.models import LoginRequest, TokenPair
from app.src.api.common.errors import NotReadyError
from tests.support.postgres import HEAD, truncate_all
from tests.support.processes import clean_environment
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.integration

SCRIPT = """
import asyncio, json, sys
from app.bootstrap import open_services
from app.settings import load_settings

async def main():
    async with open_services(load_settings()) as services:
        ready = await services.readiness.check()
    print(json.dumps({"revision": ready.schema_revision, "loaded": sorted(
        name for name in ("quart", "quart_schema", "werkzeug", "hypercorn") if name in sys.modules)}))

asyncio.run(main())
"""


def test_a_process_opens_the_root_and_calls_a_service_without_loading_quart(database_uri: str, tmp_path: Path) -> None:
    environment = clean_environment(PROFILE="test", DB_URI=database_uri, LOG_LEVEL="WARNING")
    result = subprocess.run(  # noqa: S603 - our own interpreter on a script of this test
        [sys.executable, "-c", SCRIPT], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"revision": HEAD, "loaded": []}


async def _our_connections(database_uri: str) -> int:
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'proving-ground'"
        )
        return count
    finally:
        await connection.close()


async def _until_no_connections_are_left(database_uri: str) -> int:
    """A closed connection's server process ends just after the client lets go: wait for it, boundedly."""
    async with asyncio.timeout(10):
        while (count := await _our_connections(database_uri)) > 0:  # noqa: ASYNC110 - the state is in PostgreSQL
            await asyncio.sleep(0.05)
    return count


async def test_the_root_serves_a_service_call_and_leaves_no_task_or_connection(
    settings: Settings, database_uri: str, simulator_urls: dict[str, str]
) -> None:
    await truncate_all(database_uri)
    configured = settings.model_copy(
        update={"notify_url": simulator_urls["notify"], "notify_api_key": SecretStr(API_KEY)}
    )
    email = f"root-{uuid.uuid4().hex[:8]}@example.org"
    tasks_before = asyncio.all_tasks()
    try:
        async with open_services(configured) as services:
            await services.auth.put_verified_account(email, "A", "a long passphrase")
            tokens = await services.auth.login(LoginRequest(email=email, password="a long passphrase"), "script")
            assert isinstance(tokens, TokenPair)
            profile = await services.auth.authenticate(tokens.access_token)
            assert (await services.auth.me(profile)).email == email
            assert await _our_connections(database_uri) >= 1
            notify = services.providers["notify"]
        assert asyncio.all_tasks() == tasks_before
        assert await _until_no_connections_are_left(database_uri) == 0
        with pytest.raises(RuntimeError, match="not started"):
            await notify.request("GET", "/v1/messages")
    finally:
        await truncate_all(database_uri)


async def test_a_database_that_cannot_be_reached_does_not_stop_the_root_from_opening(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={"db_uri": SecretStr("postgresql://nobody@127.0.0.1:1/none"), "db_connect_timeout": 0.5}
    )
    async with open_services(unreachable) as services:
        with pytest.raises(NotReadyError, match="not reachable"):
            await services.readiness.check()

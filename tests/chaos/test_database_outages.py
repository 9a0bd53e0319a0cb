"""A database that cannot serve — every pooled connection taken, connections cut, the server down — is a 503
with Retry-After that the client can act on, never a 500; and the service recovers without a restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from quart import Quart
from sqlalchemy import make_url

from app import create_app
from app.http.services import services_of
from app.runtime.migrations import upgrade
from app.settings import Settings
from tests.integration.auth_support import User, auth_settings, serve
from tests.support.postgres import truncate_all
from tests.support.private_postgres import private_postgres
from tests.support.probe import PREFIX, add_probe_routes

pytestmark = pytest.mark.chaos


async def unavailable(response: Any, code: str, retry_after: str) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == retry_after
    assert (await response.get_json())["type"] == f"urn:proving-ground:problem:{code}"


@pytest.fixture
async def one_connection_app(settings: Settings, database_uri: str) -> AsyncIterator[tuple[Quart, User, str]]:
    """The service with a pool of one connection, and a user signed in: (app, user, access token)."""
    app = create_app(auth_settings(settings, db_pool_size=1, db_read_pool_size=1, db_connect_timeout=0.3))
    async with app.test_app() as serving:
        user = User(serving.test_client(), f"pool-{uuid.uuid4().hex[:8]}@example.org")
        await user.register()
        yield app, user, (await user.tokens())["access_token"]
    await truncate_all(database_uri)


async def test_no_free_pooled_connection_is_a_503_not_a_500(one_connection_app: tuple[Quart, User, str]) -> None:
    app, user, token = one_connection_app
    async with services_of(app).database.reading():  # the only read connection, taken
        await unavailable(await user.get("/api/auth/me", token), "database-busy", "1")
    assert (await user.get("/api/auth/me", token)).status_code == 200


async def until_the_sleep_runs(database_uri: str, within: float = 5) -> None:
    """Until the probe's pg_sleep is running on the server (that state is in PostgreSQL: polled)."""
    admin = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        async with asyncio.timeout(within):
            while not await admin.fetchval(  # noqa: ASYNC110 - the state is in PostgreSQL, not here
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"
            ):
                await asyncio.sleep(0.01)
    finally:
        await admin.close()


async def cut_connections(database_uri: str) -> None:
    admin = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'proving-ground'"
        )
    finally:
        await admin.close()


async def test_a_write_whose_connection_is_cut_under_it_is_a_503_then_the_next_request_works(
    settings: Settings, database_uri: str
) -> None:
    app = add_probe_routes(create_app(settings))
    async with app.test_app() as serving:
        client = serving.test_client()
        running = asyncio.create_task(client.get(PREFIX + "/slow-write", headers={"X-Client-Id": "cut"}))
        await until_the_sleep_runs(database_uri)
        await cut_connections(database_uri)
        await unavailable(await running, "database-unavailable", "5")  # a write is never run again unasked
        for _ in range(2):  # the pool's other connections were cut too, idle: no request sees it
            assert (await client.get(PREFIX + "/slow-read", headers={"X-Client-Id": "cut"})).status_code == 200
        assert (await client.get(PREFIX + "/slow-write", headers={"X-Client-Id": "cut"})).status_code == 200


async def test_a_read_whose_connection_is_cut_under_it_runs_again_on_a_fresh_one(
    settings: Settings, database_uri: str
) -> None:
    app = add_probe_routes(create_app(settings))
    async with app.test_app() as serving:
        client = serving.test_client()
        running = asyncio.create_task(client.get(PREFIX + "/slow-read", headers={"X-Client-Id": "cut"}))
        await until_the_sleep_runs(database_uri)
        await cut_connections(database_uri)
        assert (await running).status_code == 200  # not 503: a read is run again, once, on a fresh connection


async def test_connections_cut_between_requests_are_replaced_unseen(
    one_connection_app: tuple[Quart, User, str], database_uri: str
) -> None:
    _, user, token = one_connection_app
    await cut_connections(database_uri)
    assert (await user.get("/api/auth/me", token)).status_code == 200


async def test_a_database_that_is_down_is_a_503_for_sign_in_and_back_without_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    with private_postgres(tmp_path / "pg") as postgres:
        await upgrade(postgres.uri)
        configured = auth_settings(settings, db_uri=SecretStr(postgres.uri), db_connect_timeout=1.0)
        async with serve(create_app(configured)) as client:
            user = User(client, "down@example.org")
            await user.register()
            await asyncio.to_thread(postgres.stop)
            await unavailable(await user.login(), "database-unavailable", "5")
            await asyncio.to_thread(postgres.start)
            assert (await user.login()).status_code == 200

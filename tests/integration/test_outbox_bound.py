"""NFR-3: the outbox has a bound. Work that would add messages past it is refused before any effect (503 and
Retry-After, nothing committed); a best-effort message past it is not added, and that is counted, never silent."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import make_url

from app import create_app
from app.http.services import services_of
from app.settings import Settings
from tests.integration.auth_support import User, auth_settings, serve
from tests.support.postgres import truncate_all


async def fill_outbox(database_uri: str, count: int) -> None:
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        for number in range(count):
            await connection.execute(
                "INSERT INTO outbox (kind, about, payload, idempotency_key) VALUES ('test', 'nobody', '{}', $1)",
                f"filler-{number}",
            )
    finally:
        await connection.close()


async def rows(database_uri: str, query: str, *arguments: Any) -> int:
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        count: int = await connection.fetchval(query, *arguments)
        return count
    finally:
        await connection.close()


@pytest.mark.requirement("NFR-3")
async def test_a_registration_past_the_outbox_bound_is_refused_and_leaves_no_trace(
    settings: Settings, database_uri: str
) -> None:
    await truncate_all(database_uri)
    async with serve(create_app(auth_settings(settings, outbox_max_pending=3))) as client:
        await fill_outbox(database_uri, 3)
        email = f"refused-{uuid.uuid4().hex[:8]}@example.org"
        response = await User(client, email).register()
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "10"
        assert (await response.get_json())["type"] == "urn:proving-ground:problem:outbox-full"
    assert await rows(database_uri, "SELECT count(*) FROM users WHERE email = $1", email) == 0
    assert await rows(database_uri, "SELECT count(*) FROM outbox") == 3
    await truncate_all(database_uri)


@pytest.mark.requirement("NFR-3")
async def test_a_login_alert_past_the_bound_is_not_added_but_counted_and_the_sign_in_succeeds(
    settings: Settings, database_uri: str
) -> None:
    await truncate_all(database_uri)
    app = create_app(auth_settings(settings, outbox_max_pending=2))
    async with serve(app) as client:
        user = User(client, f"alerted-{uuid.uuid4().hex[:8]}@example.org")
        await user.register()  # its confirmation link is one message
        await fill_outbox(database_uri, 1)
        assert (await user.login(client_id="new-device")).status_code == 200
        refused = services_of(app).registry.get_sample_value("outbox_refused_total", {"kind": "login_alert"})
    assert refused == 1
    assert await rows(database_uri, "SELECT count(*) FROM outbox WHERE kind = 'login_alert'") == 0
    await truncate_all(database_uri)

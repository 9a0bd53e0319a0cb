"""TEST_DB_KEEP's databases (tests/support/postgres.py kept_database): runs side by side never share one, and a
run finds its database empty and its sequences restarted, whatever the last run in that slot left."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import make_url

from tests.support.postgres import kept_database

pytestmark = pytest.mark.integration


async def _fetch(uri: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(make_url(uri).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql)
        return rows
    finally:
        await connection.close()


def test_runs_at_once_hold_different_kept_databases_and_a_later_run_finds_its_own_empty(
    postgres_admin_uri: str,
) -> None:
    with kept_database(postgres_admin_uri) as first, kept_database(postgres_admin_uri) as second:
        assert first != second
        asyncio.run(_fetch(first, "INSERT INTO outbox (kind, about, payload, idempotency_key) "
                                  "VALUES ('test', 'x', '{}', 'left-behind')"))  # fmt: skip
    with kept_database(postgres_admin_uri) as again, kept_database(postgres_admin_uri) as other:
        assert first in {again, other}  # the slot is free again once its run ends
        for uri in (again, other):
            assert asyncio.run(_fetch(uri, "SELECT count(*) AS n FROM outbox"))[0]["n"] == 0
        [row] = asyncio.run(_fetch(first, "INSERT INTO outbox (kind, about, payload, idempotency_key) "
                                          "VALUES ('test', 'x', '{}', 'next') RETURNING id"))  # fmt: skip
        assert row["id"] == 1  # the sequence restarted with the rows

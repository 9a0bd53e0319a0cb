"""The outbox's SQL (app/src/database/outbox.py) on real PostgreSQL, statement by statement: what each one claims,
leases, records and counts. The dispatcher's tests (tests/chaos/test_outbox_dispatch.py) prove the whole; these
say which statement broke, in a tenth of a second rather than at the end of a dispatcher's patience."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import make_url

from app.database import Database
from app.src.database.outbox import Claimed, Message, OutboxRepository, OutboxStatements, OutboxStats

pytestmark = pytest.mark.integration

Table = OutboxRepository | OutboxStatements


def message(number: int, *, kind: str = "test", about: str | None = None) -> Message:
    return Message(kind=kind, about=about or f"user:{number}", payload={"n": number}, idempotency_key=f"m-{number}")


@pytest.fixture
async def sql(clean_database: Database, database_uri: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the same database, to set the scene and read rows as they are."""
    connection = await asyncpg.connect(
        make_url(database_uri).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    yield connection
    await connection.close()


@asynccontextmanager
async def repository(database: Database) -> AsyncIterator[OutboxRepository]:
    """OutboxRepository in a unit of work, committed at the end of the block."""
    async with database.unit_of_work() as uow:
        yield uow.repository(OutboxRepository)
        await uow.commit()


@asynccontextmanager
async def statements(sql: asyncpg.Connection) -> AsyncIterator[OutboxStatements]:
    """OutboxStatements in a transaction of the plain connection, committed at the end of the block."""
    async with sql.transaction():
        yield OutboxStatements(sql)


def each_table(database: Database, sql: asyncpg.Connection) -> list[Callable[[], AbstractAsyncContextManager[Table]]]:
    """Both implementations of the outbox's admission and writes, each in a transaction of its own."""
    return [lambda: repository(database), lambda: statements(sql)]


async def add(database: Database, *messages: Message) -> None:
    async with repository(database) as outbox:
        for each in messages:
            await outbox.add(each)


async def row(sql: asyncpg.Connection, idempotency_key: str) -> asyncpg.Record:
    """The message's row, with its times as seconds from now (a fresh transaction's now)."""
    found = await sql.fetchrow(
        "SELECT status, attempts, last_error, delivered_at IS NOT NULL AS delivered, lease_until IS NULL AS unleased, "
        "extract(epoch FROM next_attempt_at - now())::float AS due_in, "
        "extract(epoch FROM lease_until - now())::float AS lease_in FROM outbox WHERE idempotency_key = $1",
        idempotency_key,
    )
    assert found is not None
    return found


async def claim(database: Database, limit: int = 10, lease_seconds: float = 600) -> list[Claimed]:
    async with repository(database) as outbox:
        return await outbox.claim(limit, lease_seconds)


async def test_a_message_is_added_once_per_idempotency_key_and_waits_pending(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    for number, table in enumerate(each_table(clean_database, sql)):
        async with table() as outbox:
            assert await outbox.add(message(number)) is True
            assert await outbox.add(message(number)) is False
    rows = await sql.fetch("SELECT kind, about, payload, status, attempts FROM outbox ORDER BY id")
    assert [tuple(found) for found in rows] == [
        ("test", "user:0", '{"n": 0}', "pending", 0),
        ("test", "user:1", '{"n": 1}', "pending", 0),
    ]


async def test_waiting_at_least_counts_pending_and_sending_messages_only(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, *(message(number) for number in range(4)))
    await sql.execute("UPDATE outbox SET status = 'sending' WHERE idempotency_key = 'm-0'")
    await sql.execute("UPDATE outbox SET status = 'delivered' WHERE idempotency_key = 'm-1'")
    await sql.execute("UPDATE outbox SET status = 'dead' WHERE idempotency_key = 'm-2'")
    for table in each_table(clean_database, sql):  # waiting: m-0 (sending) and m-3 (pending)
        async with table() as outbox:
            assert [await outbox.waiting_at_least(count) for count in (1, 2, 3)] == [True, True, False]


async def test_a_claim_leases_the_due_messages_oldest_first_up_to_its_limit(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, *(message(number) for number in range(4)))
    for number, seconds_ago in ((0, 10), (1, 30), (2, 20)):
        await sql.execute(
            "UPDATE outbox SET next_attempt_at = now() - make_interval(secs => $2) WHERE idempotency_key = $1",
            f"m-{number}", float(seconds_ago),
        )  # fmt: skip
    await sql.execute("UPDATE outbox SET next_attempt_at = now() + interval '1 hour' WHERE idempotency_key = 'm-3'")
    claimed = sorted(await claim(clean_database, limit=2, lease_seconds=600), key=lambda each: each.idempotency_key)
    assert [(each.kind, each.payload, each.idempotency_key, each.attempts) for each in claimed] == [
        ("test", {"n": 1}, "m-1", 1),
        ("test", {"n": 2}, "m-2", 1),
    ]
    ids = await sql.fetch("SELECT id, idempotency_key FROM outbox")
    assert {each.id for each in claimed} == {found["id"] for found in ids if found["idempotency_key"] in {"m-1", "m-2"}}
    leased = await row(sql, "m-1")
    assert (leased["status"], leased["attempts"]) == ("sending", 1)
    assert 590 < leased["lease_in"] <= 600
    [rest] = await claim(clean_database)  # the rest of the due ones; m-3 is not due yet
    assert (rest.idempotency_key, rest.attempts) == ("m-0", 1)
    assert (await row(sql, "m-3"))["status"] == "pending"


async def test_a_message_whose_lease_ran_out_is_claimed_again_and_one_still_leased_is_not(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, message(1), message(2))
    assert len(await claim(clean_database, lease_seconds=600)) == 2
    await sql.execute("UPDATE outbox SET lease_until = now() - interval '1 second' WHERE idempotency_key = 'm-1'")
    [again] = await claim(clean_database)
    assert (again.idempotency_key, again.attempts) == ("m-1", 2)  # its dispatcher died: another sends it
    assert await claim(clean_database) == []


async def test_two_dispatchers_claiming_at_once_never_take_the_same_message(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, *(message(number) for number in range(4)))
    async with clean_database.unit_of_work() as first:
        mine = await first.repository(OutboxRepository).claim(2, 600)
        # the first claim's transaction is still open: its rows are locked, and the second skips them
        theirs = await asyncio.wait_for(claim(clean_database, limit=10), timeout=10)
        await first.commit()
    assert len(mine) == 2
    assert sorted(each.idempotency_key for each in mine + theirs) == ["m-0", "m-1", "m-2", "m-3"]


async def test_delivered_retry_later_and_dead_record_how_an_attempt_went(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, *(message(number) for number in range(4)))
    ids = {found["idempotency_key"]: found["id"] for found in await sql.fetch("SELECT id, idempotency_key FROM outbox")}
    await claim(clean_database)
    async with repository(clean_database) as outbox:
        await outbox.delivered([ids["m-0"]])
        await outbox.delivered([])
        await outbox.retry_later(ids["m-1"], 300, "503 from notify")
        await outbox.dead(ids["m-2"], "400 from notify")
    delivered, retried, dead, untouched = [await row(sql, f"m-{number}") for number in range(4)]
    assert (delivered["status"], delivered["delivered"], delivered["unleased"], delivered["last_error"]) == (
        "delivered", True, True, None,
    )  # fmt: skip
    assert (retried["status"], retried["unleased"], retried["last_error"]) == ("pending", True, "503 from notify")
    assert 290 < retried["due_in"] <= 300
    assert (dead["status"], dead["unleased"], dead["last_error"], dead["delivered"]) == (
        "dead", True, "400 from notify", False,
    )  # fmt: skip
    assert (untouched["status"], untouched["unleased"], untouched["delivered"]) == ("sending", False, False)


async def test_a_delivered_message_forgets_the_error_of_an_earlier_attempt(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, message(1))
    [claimed] = await claim(clean_database)
    async with repository(clean_database) as outbox:
        await outbox.retry_later(claimed.id, 0, "reset by peer")
    [again] = await claim(clean_database)
    async with repository(clean_database) as outbox:
        await outbox.delivered([again.id])
    assert (await row(sql, "m-1"))["last_error"] is None


async def test_stats_count_each_state_and_the_age_of_the_oldest_waiting(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    async with repository(clean_database) as outbox:
        assert await outbox.stats() == OutboxStats(0, 0, 0, 0.0)
    await add(clean_database, *(message(number) for number in range(6)))
    for key, status, age in (("m-0", "sending", 90), ("m-1", "delivered", 900), ("m-2", "dead", 600),
                             ("m-3", "dead", 5), ("m-4", "pending", 30)):  # fmt: skip
        await sql.execute(
            "UPDATE outbox SET status = $2, created_at = now() - make_interval(secs => $3) WHERE idempotency_key = $1",
            key, status, float(age),
        )  # fmt: skip
    async with repository(clean_database) as outbox:
        stats = await outbox.stats()
    assert (stats.pending, stats.sending, stats.dead) == (2, 1, 2)  # m-4 and m-5; m-0; m-2 and m-3
    assert 90 <= stats.oldest_pending_seconds < 100  # m-0, sending: dead and delivered ones are not waiting


async def test_dead_letters_are_listed_newest_first_up_to_the_limit(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(clean_database, *(message(number) for number in range(4)))
    await sql.execute("UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'gone: ' || idempotency_key "
                      "WHERE idempotency_key <> 'm-3'")  # fmt: skip
    ids = {found["idempotency_key"]: found["id"] for found in await sql.fetch("SELECT id, idempotency_key FROM outbox")}
    async with repository(clean_database) as outbox:
        assert await outbox.dead_letters(2) == [
            (ids["m-2"], "test", 8, "gone: m-2"),
            (ids["m-1"], "test", 8, "gone: m-1"),
        ]
        assert len(await outbox.dead_letters(10)) == 3


async def test_recent_counts_one_account_s_messages_of_one_kind_within_the_window(
    clean_database: Database, sql: asyncpg.Connection
) -> None:
    await add(
        clean_database,
        message(1, kind="alert", about="user:7"),
        message(2, kind="alert", about="user:7"),
        message(3, kind="alert", about="user:8"),
        message(4, kind="link", about="user:7"),
    )
    await sql.execute("UPDATE outbox SET created_at = now() - interval '2 hours' WHERE idempotency_key = 'm-2'")
    async with repository(clean_database) as outbox:
        assert await outbox.recent("user:7", "alert", dt.timedelta(hours=1)) == 1
        assert await outbox.recent("user:7", "alert", dt.timedelta(hours=3)) == 2
        assert await outbox.recent("user:7", "link", dt.timedelta(hours=1)) == 1
        assert await outbox.recent("user:9", "alert", dt.timedelta(hours=1)) == 0


async def test_a_message_is_due_from_the_instant_it_is_added(clean_database: Database) -> None:
    async with repository(clean_database) as outbox:  # one transaction: now() is the same instant throughout
        await outbox.add(message(1))
        [claimed] = await outbox.claim(10, 600)
    assert claimed.idempotency_key == "m-1"


async def test_a_lease_holds_to_its_last_instant(clean_database: Database) -> None:
    await add(clean_database, message(1))
    await claim(clean_database)
    async with repository(clean_database) as outbox:
        await outbox.session.execute(sa.text("UPDATE outbox SET lease_until = now()"))
        assert await outbox.claim(10, 600) == []  # ends now: not yet over
        await outbox.session.execute(sa.text("UPDATE outbox SET lease_until = now() - interval '1 microsecond'"))
        assert len(await outbox.claim(10, 600)) == 1


async def test_recent_leaves_out_a_message_exactly_as_old_as_the_window(clean_database: Database) -> None:
    await add(clean_database, message(1, kind="alert", about="user:7"))
    async with repository(clean_database) as outbox:
        await outbox.session.execute(sa.text("UPDATE outbox SET created_at = now() - interval '1 hour'"))
        assert await outbox.recent("user:7", "alert", dt.timedelta(hours=1)) == 0
        assert await outbox.recent("user:7", "alert", dt.timedelta(hours=1, microseconds=1)) == 1

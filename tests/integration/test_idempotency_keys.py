"""IdempotencyKeys against PostgreSQL, below HTTP: a key whose request ended without an answer is taken over at the
point that request reached, with what it made; a key still leased is refused with the time its lease has left.
(The crash tests in tests/chaos/test_billing_crashes.py prove the same through a killed server process.)"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest
import sqlalchemy as sa

from app.database import Database
from app.src.api.auth.models import RegisterRequest
from app.src.api.common.errors import IdempotencyKeyInUseError, IdempotencyKeyReusedError
from app.src.api.idempotency.keys import Claim, IdempotencyKeys, KeyScope, StoredAnswer, fingerprint
from app.src.database import idempotency
from tests.integration.auth_service_support import EMAIL, Auth
from tests.integration.auth_support import PASSWORD

pytestmark = pytest.mark.integration

OPERATION = "billing.create_payment"
PRINT = fingerprint(OPERATION, {"amount": 5})


@pytest.fixture
async def scope(auth: Callable[..., Auth]) -> KeyScope:
    """A key of a registered account (keys belong to accounts)."""
    service = auth()
    await service.service.register(RegisterRequest(email=EMAIL, password=PASSWORD, display_name="Ada"))
    async with service.database.reading() as connection:
        user_id = await connection.fetchval("SELECT id FROM users")
    return KeyScope(user_id=user_id, client_id="web", key="key-1", operation=OPERATION)


async def leases_end_in(database: Database, seconds: float) -> None:
    """Every key's lease ends `seconds` from now (negative: it has ended)."""
    async with database.engine.begin() as connection:
        statement = "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => :seconds)"
        await connection.execute(sa.text(statement), {"seconds": seconds})


async def test_a_key_left_without_an_answer_is_taken_over_where_its_request_stopped(
    clean_database: Database, scope: KeyScope
) -> None:
    keys = IdempotencyKeys(clean_database, lease_seconds=30)
    first = await keys.begin(scope, PRINT)
    assert isinstance(first, Claim)
    async with clean_database.connection() as connection:
        await first.remember(connection, "pay_1", "charge-sent")
    with pytest.raises(IdempotencyKeyInUseError, match=r"^A request with this Idempotency-Key is in progress; try "
                                                       r"again shortly\.$") as held:  # fmt: skip
        await keys.begin(scope, PRINT)
    assert 29 <= held.value.retry_after <= 30
    await leases_end_in(clean_database, -1)
    assert await keys.begin(scope, PRINT) == Claim(first.key_id, "charge-sent", "pay_1")
    with pytest.raises(IdempotencyKeyInUseError) as leased_again:
        await keys.begin(scope, PRINT)  # the take-over leased it for a whole lease again
    assert leased_again.value.retry_after >= 29


async def test_a_lease_with_under_a_second_left_asks_for_a_one_second_wait(
    clean_database: Database, scope: KeyScope
) -> None:
    keys = IdempotencyKeys(clean_database, lease_seconds=30)
    await keys.begin(scope, PRINT)
    await leases_end_in(clean_database, 0.3)
    with pytest.raises(IdempotencyKeyInUseError, match="is in progress") as held:
        await keys.begin(scope, PRINT)
    assert held.value.retry_after == 1


async def test_a_completed_key_answers_its_stored_answer_and_other_parameters_are_refused(
    clean_database: Database, scope: KeyScope
) -> None:
    keys = IdempotencyKeys(clean_database, lease_seconds=30)
    claim = await keys.begin(scope, PRINT)
    assert isinstance(claim, Claim)
    await keys.complete(claim, StoredAnswer(201, {"Location": "/api/billing/payments/pay_1"}, b'{"id":"pay_1"}'))
    assert await keys.begin(scope, PRINT) == StoredAnswer(201, {"Location": "/api/billing/payments/pay_1"},
                                                          b'{"id":"pay_1"}')  # fmt: skip
    with pytest.raises(IdempotencyKeyReusedError, match=r"^This Idempotency-Key was used for another request; use a "
                                                        r"new key for a new request\.$"):  # fmt: skip
        await keys.begin(scope, fingerprint(OPERATION, {"amount": 6}))


async def test_a_key_that_changes_hands_at_every_look_is_refused_for_a_second(
    clean_database: Database, scope: KeyScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between reading an abandoned key and taking it over, another request takes it over and dies at once, three
    times over: the request is told to come back in a second rather than looking forever."""
    keys = IdempotencyKeys(clean_database, lease_seconds=30)
    await keys.begin(scope, PRINT)
    await leases_end_in(clean_database, -1)
    take_over = idempotency.take_over
    races: list[bool] = []

    async def lost_to_a_competitor(connection: asyncpg.Connection, key_id: int, lease_seconds: float) -> bool:
        assert await take_over(connection, key_id, lease_seconds)  # the competitor's take-over
        ours = await take_over(connection, key_id, lease_seconds)
        races.append(ours)
        await leases_end_in(clean_database, -1)  # the competitor's request ends without an answer
        return ours

    monkeypatch.setattr(idempotency, "take_over", lost_to_a_competitor)
    with pytest.raises(IdempotencyKeyInUseError, match=r"^This Idempotency-Key is changing hands; try again "
                                                       r"shortly\.$") as refused:  # fmt: skip
        await keys.begin(scope, PRINT)
    assert refused.value.retry_after == 1
    assert races == [False, False, False]
    monkeypatch.undo()
    assert isinstance(await keys.begin(scope, PRINT), Claim)  # the key is still there, and can be taken over


async def test_a_key_removed_between_our_two_statements_is_claimed_anew(
    clean_database: Database, scope: KeyScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert finds the key taken; before we read it, retention deletes it: the next look inserts it again."""
    keys = IdempotencyKeys(clean_database, lease_seconds=30)
    first = await keys.begin(scope, PRINT)
    assert isinstance(first, Claim)
    find = idempotency.find

    async def after_retention(connection: asyncpg.Connection, *where: object) -> idempotency.KeyRow | None:
        await connection.execute("DELETE FROM idempotency_keys")
        monkeypatch.setattr(idempotency, "find", find)  # once
        return await find(connection, *where)  # type: ignore[arg-type]

    monkeypatch.setattr(idempotency, "find", after_retention)
    again = await keys.begin(scope, PRINT)
    assert isinstance(again, Claim)
    assert again.key_id != first.key_id


async def test_an_answer_without_a_body_is_replayed_without_one(clean_database: Database, scope: KeyScope) -> None:
    keys = IdempotencyKeys(clean_database, lease_seconds=30)
    claim = await keys.begin(scope, PRINT)
    assert isinstance(claim, Claim)
    await keys.complete(claim, StoredAnswer(204, {}, b""))
    assert await keys.begin(scope, PRINT) == StoredAnswer(204, {}, b"")

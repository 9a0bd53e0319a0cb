"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header, as Stripe runs them), for any operation that opts
in: a key is scoped by user and client; the same key with another request is refused; while a request holds the
key a second one is told to wait; a completed answer is kept and replayed; a request that ended without an answer
to keep (it died, or failed in a way that may pass) leaves its key at a recovery point, and the retry resumes
there (brandur's atomic phases: the operation records what it made with `remember`, in the same transaction)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import orjson

from app.src.api.common.errors import IdempotencyKeyInUseError, IdempotencyKeyReusedError
from app.src.database import idempotency

if TYPE_CHECKING:
    from app.database import Database

STARTED = "started"


@dataclass(frozen=True, slots=True)
class KeyScope:
    user_id: int
    client_id: str
    key: str
    operation: str  # the route: a key used for one operation cannot be used for another


@dataclass(frozen=True, slots=True)
class Claim:
    """The key, held by this request: what an earlier attempt made (`resource_id`) and got to (`recovery_point`)."""

    key_id: int
    recovery_point: str = STARTED
    resource_id: str | None = None

    async def remember(self, connection: asyncpg.Connection, resource_id: str, recovery_point: str) -> None:
        """In the transaction that made `resource_id`: a retry of this request resumes from it."""
        await idempotency.remember(connection, self.key_id, resource_id, recovery_point)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def fingerprint(operation: str, parameters: object) -> bytes:
    """What makes two requests the same: the operation and its parameters, as canonical JSON."""
    canonical = orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(operation.encode() + b"\n" + canonical).digest()


class IdempotencyKeys:
    def __init__(self, database: Database, lease_seconds: float) -> None:
        self._database = database
        self._lease = lease_seconds

    async def begin(self, scope: KeyScope, request_fingerprint: bytes) -> Claim | StoredAnswer:
        """The key for this request (new, or taken over at its recovery point), or the answer kept for it.
        IdempotencyKeyReusedError for another request's key; IdempotencyKeyInUseError while one holds it."""
        async with self._database.connection() as connection:
            for _ in range(3):  # the key may be deleted (retention) between our statements: look again
                key_id = await idempotency.insert(
                    connection, scope.user_id, scope.client_id, scope.key, scope.operation, request_fingerprint,
                    self._lease,
                )  # fmt: skip
                if key_id is not None:
                    return Claim(key_id)
                row = await idempotency.find(connection, scope.user_id, scope.client_id, scope.key)
                if row is None:
                    continue
                if row.operation != scope.operation or row.fingerprint != request_fingerprint:
                    raise IdempotencyKeyReusedError(
                        "This Idempotency-Key was used for another request; use a new key for a new request."
                    )
                if row.response_status is not None:
                    headers = orjson.loads(row.response_headers or b"{}")
                    return StoredAnswer(row.response_status, headers, row.response_body or b"")
                if row.locked_for is not None and row.locked_for > 0:
                    raise IdempotencyKeyInUseError(
                        "A request with this Idempotency-Key is in progress; try again shortly.",
                        max(1, math.ceil(row.locked_for)),
                    )
                if await idempotency.take_over(connection, row.id, self._lease):
                    return Claim(row.id, row.recovery_point, row.resource_id)
        raise IdempotencyKeyInUseError("This Idempotency-Key is changing hands; try again shortly.", 1)

    async def complete(self, claim: Claim, answer: StoredAnswer) -> None:
        """Keep the answer: every later request with the key gets it."""
        async with self._database.connection() as connection:
            await idempotency.complete(
                connection, claim.key_id, answer.status, orjson.dumps(answer.headers), answer.body
            )

    async def release(self, claim: Claim) -> None:
        """No answer to keep (a failure that may pass): the next request with the key resumes at once."""
        async with self._database.connection() as connection:
            await idempotency.release(connection, claim.key_id)

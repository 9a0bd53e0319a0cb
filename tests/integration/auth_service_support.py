"""The auth service itself, for tests that call it as a job or script would: a real database, no HTTP, a clock
the test moves. The fixture `auth` is offered to every integration test (conftest.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from app.database import Database
from app.src.api.auth.models import LoginRequest, TokenPair, TotpChallenge
from app.src.api.auth.service import AuthPolicy, AuthService, Profile
from app.src.api.messaging.outbox import Outbox
from app.src.encryption.passwords import Argon2Parameters, PasswordHasher
from app.src.encryption.tokens import TokenKeyRing
from app.src.encryption.totp import STEP_SECONDS
from tests.integration.auth_support import NEW_KEY, PASSWORD

EMAIL = "ada@example.org"
STEP_MARGIN = 3.0  # seconds
CHEAP_ARGON2 = Argon2Parameters(memory_kib=1024, iterations=1, lanes=1)  # the rules, not the hash, are under test


@dataclass
class Clock:
    """Wall-clock time moved by the test, for what the service times itself: tokens, challenges, TOTP steps.
    (Lockouts run on the database's clock: a test ages the failures instead.)"""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    async def step_with_time_left(self) -> int:
        """The TOTP step now, once at least STEP_MARGIN seconds of it are left: a code of the step before stays within
        the service's window of one step while the request that carries it is checked. Computed a moment before a
        step ended, it was refused as out of the window when the check ran in the next (seen in `make test`)."""
        left = STEP_SECONDS - self() % STEP_SECONDS
        if left < STEP_MARGIN:
            await asyncio.sleep(left)  # the step's end is the behaviour here: the clock is the wall's
        return int(self() // STEP_SECONDS)


@dataclass
class Auth:
    service: AuthService
    clock: Clock
    database: Database

    async def age_failures(self, seconds: int) -> None:
        """Move every recorded failure `seconds` into the past: lockouts run on the database's clock."""
        async with self.database.engine.begin() as connection:
            await connection.execute(
                sa.text("UPDATE login_failures SET failed_at = failed_at - make_interval(secs => :seconds)"),
                {"seconds": seconds},
            )

    async def link_token(self) -> str:
        """The token of the newest confirmation link in the outbox."""
        [*_, newest] = await messages(self.database, "verification")
        found = re.search(r"/links/verify-email\?token=(\S+)", newest["body"])
        assert found is not None
        return found.group(1)

    async def sign_in(self, password: str = PASSWORD, client_id: str = "script") -> TokenPair | TotpChallenge:
        return await self.service.login(LoginRequest(email=EMAIL, password=password), client_id)

    async def tokens(self, client_id: str = "script") -> TokenPair:
        signed_in = await self.sign_in(client_id=client_id)
        assert isinstance(signed_in, TokenPair)
        return signed_in

    async def profile(self) -> Profile:
        return await self.service.authenticate((await self.tokens()).access_token)


@pytest.fixture
def auth(clean_database: Database) -> Callable[..., Auth]:
    """`auth(failures_per_burst=3, ...)`: the service with that policy (and cheap Argon2 parameters, unless
    `argon2=` says others), and a test clock."""

    def build(argon2: Argon2Parameters = CHEAP_ARGON2, **policy: Any) -> Auth:
        clock = Clock()
        service = AuthService(
            clean_database,
            PasswordHasher(2, argon2),
            TokenKeyRing([NEW_KEY]),
            AuthPolicy(**policy),
            Outbox(bound=1000, registry=CollectorRegistry()),
            clock=clock,
        )
        return Auth(service, clock, clean_database)

    return build


async def messages(database: Database, kind: str) -> list[dict[str, Any]]:
    async with database.reading() as connection:
        rows = await connection.fetch("SELECT payload FROM outbox WHERE kind = $1 ORDER BY id", kind)
    return [json.loads(row["payload"]) for row in rows]


async def waiting_on_a_row_lock(auth: Auth, task: asyncio.Task[object]) -> None:
    """Until another session of the database waits on a lock (or the task ends without waiting), 10 s at most."""
    deadline = time.monotonic() + 10
    while not task.done() and time.monotonic() < deadline:
        async with auth.database.reading() as connection:
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if await connection.fetchval(waiting):  # this test's database only: other workers' tests run beside it
                return
        await asyncio.sleep(0.01)

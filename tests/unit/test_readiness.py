"""Readiness asks the database at most once a second, however many probes and load balancers ask it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from app.src.api.common.errors import NotReadyError
from app.src.api.health.readiness import ReadinessCheck


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class CountingDatabase:
    """Answers `revision` after a turn of the loop, counting how often it was asked."""

    def __init__(self, revision: str | None, clock: Clock) -> None:
        self.revision = revision
        self.clock = clock
        self.asked = 0

    async def schema_revision(self) -> str | None:
        self.asked += 1
        await asyncio.sleep(0)
        self.clock.now += 0.3  # the query takes a while: the second counts from its answer
        return self.revision


def check(database: CountingDatabase, clock: Clock) -> ReadinessCheck:
    return ReadinessCheck(
        cast("Any", database), "0002", frozenset({"0001"}), deadline=1.0, cache_seconds=1.0, clock=clock
    )


async def test_probes_at_once_share_one_query_and_later_ones_reuse_it_for_a_second() -> None:
    clock = Clock()
    database = CountingDatabase("0002", clock)
    readiness = check(database, clock)
    answers = await asyncio.gather(*(readiness.check() for _ in range(50)))
    assert {answer.schema_revision for answer in answers} == {"0002"}
    clock.now += 0.9
    await readiness.check()
    assert database.asked == 1
    clock.now += 0.2
    await readiness.check()
    assert database.asked == 2


async def test_a_not_ready_answer_is_cached_too_and_names_no_revision() -> None:
    clock = Clock()
    database = CountingDatabase("0001", clock)
    readiness = check(database, clock)
    for _ in range(3):
        with pytest.raises(NotReadyError) as refused:
            await readiness.check()
        assert "0001" not in refused.value.detail
        assert "0002" not in refused.value.detail
    assert database.asked == 1
    database.revision = "0002"
    clock.now += 1.1
    assert (await readiness.check()).schema_revision == "0002"


async def test_a_schema_past_this_build_is_ready_one_behind_or_none_is_not() -> None:
    """A rolling upgrade migrates first: the replicas of the version before keep serving on the newer schema."""
    clock = Clock()
    database = CountingDatabase("0003", clock)
    readiness = check(database, clock)
    assert (await readiness.check()).schema_revision == "0003"
    for behind in ("0001", None):
        database.revision = behind
        clock.now += 1.1
        with pytest.raises(NotReadyError):
            await readiness.check()

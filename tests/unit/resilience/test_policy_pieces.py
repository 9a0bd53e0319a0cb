"""Backoff, Retry-After, the retry budget, the token bucket and the bulkhead."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random

import pytest

from app.src.resilience.backoff import full_jitter, retry_after_seconds
from app.src.resilience.budget import RetryBudget
from app.src.resilience.bulkhead import Bulkhead, BulkheadFullError
from app.src.resilience.token_bucket import BucketStore, TokenBucket


def test_full_jitter_stays_under_the_exponential_ceiling_and_the_cap() -> None:
    rng = random.Random(3)
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (6, 1.0), (20, 1.0)):
        delays = [full_jitter(attempt, 0.1, 1.0, rng) for _ in range(2000)]
        assert min(delays) >= 0
        assert max(delays) <= ceiling
        assert max(delays) > ceiling * 0.95  # and it uses the whole range


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), (" 120 ", 120.0), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("soon", None), (None, None), ("-1", None)],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = dt.datetime(2015, 10, 21, 7, 28, 0, tzinfo=dt.UTC)
    assert retry_after_seconds(header, now) == seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.requirement("NFR-2")
def test_retry_budget_allows_its_share_of_recent_calls_with_a_minimum() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, minimum=3, window=10, clock=clock)
    for _ in range(50):
        budget.record_call()
    assert sum(budget.try_spend() for _ in range(20)) == 10  # 20% of 50
    clock.now = 11  # the window moved on: the calls and retries are forgotten
    assert sum(budget.try_spend() for _ in range(20)) == 3  # the minimum, with no calls at all


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.seconds_until_next() == 1
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert bucket.take(100)
    assert bucket.remaining == 2


@pytest.mark.requirement("NFR-4")
async def test_bulkhead_fails_fast_when_full_and_frees_places() -> None:
    bulkhead = Bulkhead(limit=2, max_wait=0.01)
    release = asyncio.Event()

    async def hold() -> None:
        await bulkhead.enter()
        await release.wait()
        bulkhead.leave()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    assert bulkhead.in_flight == 2
    with pytest.raises(BulkheadFullError):
        await bulkhead.enter()  # waits its 10 ms, then fails fast
    release.set()
    await asyncio.gather(*holders)
    await bulkhead.enter()
    assert bulkhead.in_flight == 1


@pytest.mark.requirement("NFR-2")
def test_retry_budget_forgets_calls_as_the_window_rolls_past_them() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.5, minimum=0, window=10, clock=clock)
    for _ in range(10):
        budget.record_call()
    clock.now = 5
    for _ in range(10):
        budget.record_call()
    clock.now = 10.5  # the first ten left the window, the last ten are still in it
    assert sum(budget.try_spend() for _ in range(20)) == 5


@pytest.mark.requirement("NFR-4")
async def test_bulkhead_hands_a_freed_place_to_the_first_waiter() -> None:
    bulkhead = Bulkhead(limit=1, max_wait=5)
    assert bulkhead.try_enter()
    order: list[str] = []

    async def wait(name: str) -> None:
        await bulkhead.enter()
        order.append(name)

    waiters = [asyncio.create_task(wait(name)) for name in ("first", "second")]
    await asyncio.sleep(0)
    assert not bulkhead.try_enter()  # a place that frees up goes to the queue, not to a newcomer
    bulkhead.leave()
    await asyncio.sleep(0)
    assert (order, bulkhead.in_flight) == (["first"], 1)
    bulkhead.leave()
    await asyncio.gather(*waiters)
    assert (order, bulkhead.in_flight) == (["first", "second"], 1)
    bulkhead.leave()
    assert bulkhead.in_flight == 0


async def test_a_waiter_cancelled_as_its_place_arrives_passes_the_place_on() -> None:
    bulkhead = Bulkhead(limit=1, max_wait=5)
    assert bulkhead.try_enter()
    cancelled = asyncio.create_task(bulkhead.enter())
    await asyncio.sleep(0)
    bulkhead.leave()  # hands the place to the waiter...
    cancelled.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert bulkhead.in_flight == 0
    assert bulkhead.try_enter()


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    bulkhead = Bulkhead(limit=1, max_wait=5)
    assert bulkhead.try_enter()
    cancelled = asyncio.create_task(bulkhead.enter())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    bulkhead.leave()
    assert bulkhead.in_flight == 0
    assert bulkhead.try_enter()  # nobody is queued any more


def test_a_bucket_store_names_its_policy_and_says_when_a_bucket_is_full_again() -> None:
    assert BucketStore("per-client", rate=10, burst=5, max_keys=9).policy == '"per-client";q=5;w=1'  # at least 1 s
    store = BucketStore("per-client", rate=2, burst=10, max_keys=9)
    assert store.policy == '"per-client";q=10;w=5'
    bucket = store.bucket("a", now=0.0)
    for _ in range(4):
        assert bucket.take(0.0)
    assert store.state(bucket) == '"per-client";r=6;t=2'  # 4 tokens short at 2 a second
    assert store.refusal_headers(3) == {
        "Retry-After": "3",
        "RateLimit-Policy": '"per-client";q=10;w=5',
        "RateLimit": '"per-client";r=0;t=3',
    }


def test_a_bucket_store_remembers_its_most_recent_keys_and_forgets_the_oldest() -> None:
    store = BucketStore("per-client", rate=1, burst=1, max_keys=2)
    for key in ("a", "b"):
        assert store.bucket(key, now=0.0).take(0.0)
    assert not store.bucket("a", now=0.0).take(0.0)  # both remembered: "a" is empty, and now the most recent
    assert store.bucket("c", now=0.0).take(0.0)  # a third key: the least recently seen ("b") is forgotten
    assert not store.bucket("a", now=0.0).take(0.0)
    assert not store.bucket("c", now=0.0).take(0.0)
    assert store.bucket("b", now=0.0).take(0.0)  # forgotten, so it starts again with a full bucket


def test_retry_after_as_a_date_counts_from_the_real_clock_when_no_time_is_given() -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    seconds = retry_after_seconds(email.utils.format_datetime(soon, usegmt=True))
    assert seconds is not None
    assert 25 <= seconds <= 31


def test_retries_spent_more_than_a_window_ago_no_longer_count() -> None:
    now = [1.5]
    budget = RetryBudget(ratio=0.5, minimum=3, window=10, clock=lambda: now[0])
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]  # the minimum, in slot 1
    now[0] = 10.5
    budget.record_call()  # slot 10: slot 1 is still in the window
    assert not budget.try_spend()
    now[0] = 11.5  # slot 11: slot 1 has left the window
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]

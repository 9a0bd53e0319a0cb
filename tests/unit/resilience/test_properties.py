"""The properties NFR-2 and NFR-4 promise of the pure pieces, over inputs hypothesis chooses: backoff bounds and
spread, Retry-After in both forms and as garbage, the retry budget over any sequence of calls, retries and clock
moves, and the token bucket's burst and rate."""

from __future__ import annotations

import datetime as dt
import email.utils
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.src.resilience.backoff import full_jitter, retry_after_seconds
from app.src.resilience.budget import SLOTS, RetryBudget
from app.src.resilience.token_bucket import TokenBucket

bases = st.floats(min_value=0.001, max_value=5, allow_nan=False)
caps = st.floats(min_value=0.001, max_value=60, allow_nan=False)
attempts = st.integers(min_value=1, max_value=40)


@pytest.mark.requirement("NFR-2")
@given(attempt=attempts, base=bases, cap=caps, seed=st.integers())
def test_a_backoff_delay_is_never_negative_nor_past_the_cap_nor_past_the_exponential_bound(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    delay = full_jitter(attempt, base, cap, random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2 ** (attempt - 1))


@pytest.mark.requirement("NFR-2")
@given(attempt=st.integers(min_value=1, max_value=8), base=bases, seed=st.integers())
def test_backoff_delays_are_spread_over_the_whole_range_not_constant(attempt: int, base: float, seed: int) -> None:
    bound = base * 2 ** (attempt - 1)
    rng = random.Random(seed)
    delays = [full_jitter(attempt, base, 1e9, rng) for _ in range(400)]
    assert len(set(delays)) > 350  # jittered: clients that failed together do not retry together
    assert min(delays) < bound * 0.1
    assert max(delays) > bound * 0.9
    assert 0.35 * bound < sum(delays) / len(delays) < 0.65 * bound  # uniform over [0, bound]: mean bound / 2


@pytest.mark.requirement("NFR-2")
@given(base=bases, cap=caps, seed=st.integers())
def test_the_backoff_range_doubles_with_each_attempt_until_the_cap(base: float, cap: float, seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(1, 12):
        bound = min(cap, base * 2 ** (attempt - 1))
        samples = [full_jitter(attempt, base, cap, rng) for _ in range(200)]
        assert max(samples) <= bound
        assert max(samples) > bound * 0.8  # the range grows to its bound, and stops at the cap


@pytest.mark.requirement("NFR-2")
@given(seconds=st.integers(min_value=0, max_value=10**9), spaces=st.sampled_from(["", " ", "  "]))
def test_retry_after_in_delay_seconds_is_read_as_given(seconds: int, spaces: str) -> None:
    assert retry_after_seconds(f"{spaces}{seconds}{spaces}") == float(seconds)


@pytest.mark.requirement("NFR-2")
@given(
    now=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1)),  # noqa: DTZ001 - naive bounds, the zone set below
    offset=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_retry_after_as_an_http_date_is_the_seconds_until_then_and_never_negative(
    now: dt.datetime, offset: int
) -> None:
    now = now.replace(microsecond=0, tzinfo=dt.UTC)
    when = now + dt.timedelta(seconds=offset)
    header = email.utils.format_datetime(when, usegmt=True)
    assert retry_after_seconds(header, now) == max(0.0, float(offset))


@pytest.mark.requirement("NFR-2")
@given(value=st.text(max_size=40))
def test_garbage_in_retry_after_is_no_hint_never_an_error_or_a_negative_wait(value: str) -> None:
    assume(not value.strip().isdigit())
    seconds = retry_after_seconds(value, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert seconds is None or seconds >= 0


@pytest.mark.requirement("NFR-2")
def test_retry_after_absent_or_a_date_without_a_zone_is_no_hint() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 -0000") is None  # no zone: RFC 5322 says unknown
    assert retry_after_seconds("-5") is None
    assert retry_after_seconds("1.5") is None  # delay-seconds is a whole number


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


events = st.lists(
    st.one_of(
        st.just(("call", 0.0)),
        st.just(("retry", 0.0)),
        st.tuples(st.just("tick"), st.floats(min_value=0, max_value=25, allow_nan=False)),
    ),
    max_size=300,
)


@pytest.mark.requirement("NFR-2")
@given(
    steps=events,
    ratio=st.floats(min_value=0, max_value=1),
    minimum=st.integers(min_value=0, max_value=10),
    window=st.sampled_from([1.0, 10.0, 30.0]),
)
@settings(max_examples=200)
def test_retries_granted_in_any_window_never_exceed_the_budget(
    steps: list[tuple[str, float]], ratio: float, minimum: int, window: float
) -> None:
    """Against a model that remembers every event: the budget counts in tenths of the window, so it may look back
    up to a tenth further than the window (never less far), and grants only what that span allows."""
    clock = Clock()
    budget = RetryBudget(ratio, minimum, window, clock)
    slot = window / SLOTS
    history: list[tuple[float, str]] = []
    for kind, amount in steps:
        if kind == "tick":
            clock.now += amount
            continue
        if kind == "call":
            budget.record_call()
            history.append((clock.now, "call"))
            continue
        # the span the budget counts: the slots of the last window, the current slot included
        since = (int(clock.now / slot) - SLOTS + 1) * slot
        recent = [what for at, what in history if at >= since]
        allowed = max(minimum, ratio * recent.count("call"))
        granted = budget.try_spend()
        assert granted == (recent.count("retry") < allowed)
        if granted:
            history.append((clock.now, "retry"))


@pytest.mark.requirement("NFR-2")
@given(steps=events)
def test_the_minimum_is_always_available_after_a_quiet_window(steps: list[tuple[str, float]]) -> None:
    clock = Clock()
    budget = RetryBudget(0.0, 3, 10.0, clock)
    for kind, amount in steps:
        if kind == "tick":
            clock.now += amount
        elif kind == "call":
            budget.record_call()
        else:
            budget.try_spend()
    clock.now += 10.0 + 1.0  # a whole window and a slot of nothing
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


@pytest.mark.requirement("NFR-4")
@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=500),
    gaps=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=200),
)
def test_a_bucket_never_lets_more_through_than_its_burst_plus_its_rate_times_the_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    passed = 0
    for gap in gaps:
        now += gap
        passed += bucket.take(now)
        assert passed <= burst + rate * now + 1e-6
        assert 0 <= bucket.remaining <= burst


@pytest.mark.requirement("NFR-4")
@given(rate=st.floats(min_value=1, max_value=200), burst=st.integers(min_value=1, max_value=50))
def test_a_drained_bucket_refills_at_its_rate_and_never_past_its_burst(rate: float, burst: int) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(burst + 5)) == burst  # the burst at once, not one more
    assert not bucket.take(0.0)
    assert bucket.seconds_until_next() == max(1, -(-1 // rate))  # whole seconds, at least one
    one_token = 1 / rate
    assert bucket.take(one_token * 1.01)  # one token back after 1/rate seconds
    assert not bucket.take(one_token * 1.01)
    bucket.take(1e6)  # a long quiet time fills it only to the burst
    assert bucket.remaining == burst - 1

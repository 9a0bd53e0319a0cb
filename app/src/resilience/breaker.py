"""A circuit breaker per provider (after Resilience4j): failure rate over a sliding window of the last calls;
open for a while; then half-open with a few trial permits, each released on success, failure or cancellation.
A permit belongs to the period (closed, or one half-open spell) that issued it: one that ends in a later period
counts for nothing, so a slow call from before cannot close, open or free a trial of the breaker now."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from types import TracebackType


class BreakerState(Enum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class BreakerOpenError(Exception):
    def __init__(self, retry_in: float) -> None:
        super().__init__(f"circuit open; the next trial in {retry_in:.2f} s")
        self.retry_in = retry_in


Transition = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        *,
        window: int,
        minimum_calls: int,
        failure_rate: float,
        open_seconds: float,
        half_open_calls: int,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self._outcomes: deque[bool] = deque(maxlen=window)  # True: failed
        self._failures = 0  # among self._outcomes
        self._minimum_calls = minimum_calls
        self._failure_rate = failure_rate
        self._open_seconds = open_seconds
        self._half_open_calls = half_open_calls
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._trials_issued = 0
        self._trials_passed = 0
        self._period = 0  # the number of the state period now: a trial counts only in the period that issued it

    @property
    def state(self) -> BreakerState:
        return self._state

    def permit(self) -> Permit:
        """A permit for one call, or BreakerOpenError. Use it as a context manager and record the call's outcome."""
        if self._state is BreakerState.OPEN:
            waited = self._clock() - self._opened_at
            if waited < self._open_seconds:
                raise BreakerOpenError(self._open_seconds - waited)
            self._move(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._trials_issued >= self._half_open_calls:
                raise BreakerOpenError(0.0)
            self._trials_issued += 1
            return Permit(self, trial=True, period=self._period)
        return Permit(self, trial=False, period=self._period)

    def _record(self, failed: bool, trial: bool, period: int) -> None:
        if period != self._period:
            return  # issued before the last change of state (or a trial that ended after another had decided)
        if trial:
            if failed:
                self._open()
            else:
                self._trials_passed += 1
                if self._trials_passed >= self._half_open_calls:
                    self._outcomes.clear()
                    self._failures = 0
                    self._move(BreakerState.CLOSED)
            return
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._failures -= 1  # the oldest outcome is about to leave the window
        outcomes.append(failed)
        self._failures += failed
        if len(outcomes) >= self._minimum_calls and self._failures / len(outcomes) >= self._failure_rate:
            self._open()

    def _release_trial(self, period: int) -> None:
        if period == self._period and self._trials_issued > 0:
            self._trials_issued -= 1

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        self._trials_issued = self._trials_passed = 0
        self._period += 1
        if self._on_transition is not None and previous is not state:
            self._on_transition(previous, state)


class Permit:
    """Recorded exactly once: `succeeded()`, `failed()` (or `record(failed)`), or on leaving the `with` without
    any (cancellation, an error that says nothing of the provider) the trial permit is handed back unrecorded."""

    __slots__ = ("_breaker", "_done", "_period", "_trial")

    def __init__(self, breaker: CircuitBreaker, trial: bool, period: int) -> None:
        self._breaker = breaker
        self._trial = trial
        self._period = period
        self._done = False

    def succeeded(self) -> None:
        self.record(failed=False)

    def failed(self) -> None:
        self.record(failed=True)

    def record(self, failed: bool) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(failed, self._trial, self._period)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self._done = True
            if self._trial:
                self._breaker._release_trial(self._period)

"""NFR-2, the circuit breaker as a hypothesis state machine: any sequence of permits, outcomes, cancellations and
clock moves keeps what the breaker promises. It opens exactly when the failure rate of the last `window` calls
reaches the threshold (once `minimum_calls` are in), refuses while open, lets at most `half_open_calls` trials
out at once in half-open, closes only after that many trials of one half-open period succeed, and a permit from
an earlier period (a slow call that ends after the state moved on) changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, precondition, rule

from app.src.resilience.breaker import BreakerOpenError, BreakerState, CircuitBreaker, Permit

WINDOW, MINIMUM_CALLS, FAILURE_RATE, OPEN_SECONDS, HALF_OPEN_CALLS = 4, 2, 0.5, 10.0, 2


@dataclass
class Issued:
    permit: Permit
    trial: bool
    period: int


class BreakerMachine(RuleBasedStateMachine):
    permits = Bundle("permits")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.period = 0  # counted from the breaker's own transitions
        self.breaker = CircuitBreaker(
            window=WINDOW,
            minimum_calls=MINIMUM_CALLS,
            failure_rate=FAILURE_RATE,
            open_seconds=OPEN_SECONDS,
            half_open_calls=HALF_OPEN_CALLS,
            clock=lambda: self.now,
            on_transition=self._moved,
        )
        self.outcomes: list[bool] = []  # closed-period outcomes, newest last (True: failed)
        self.opened_at = 0.0
        self.trials_out = 0  # trials of this half-open period, issued and not handed back
        self.trials_passed = 0

    def _moved(self, previous: BreakerState, state: BreakerState) -> None:
        self.period += 1
        self.outcomes, self.trials_out, self.trials_passed = [], 0, 0
        if state is BreakerState.OPEN:
            self.opened_at = self.now

    @rule(seconds=st.sampled_from([0.0, 0.5, 3.0, 9.99, 10.0, 25.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @rule(target=permits)
    def ask(self) -> Issued | object:  # an Issued, or nothing added to the bundle
        state, period = self.breaker.state, self.period
        try:
            permit = self.breaker.permit()
        except BreakerOpenError as refused:
            self._refused(state, refused.retry_in)
            return multiple()
        if state is BreakerState.OPEN:
            assert self.now - self.opened_at >= OPEN_SECONDS  # refused until the open time is over
            assert self.breaker.state is BreakerState.HALF_OPEN
        trial = self.breaker.state is BreakerState.HALF_OPEN
        if trial:
            self.trials_out += 1
        else:
            assert period == self.period
        return Issued(permit, trial, self.period)

    def _refused(self, state: BreakerState, retry_in: float) -> None:
        if state is BreakerState.OPEN:
            assert self.now - self.opened_at < OPEN_SECONDS or self.breaker.state is BreakerState.HALF_OPEN
        else:
            assert state is BreakerState.HALF_OPEN
        if self.breaker.state is BreakerState.OPEN:
            assert retry_in == pytest.approx(OPEN_SECONDS - (self.now - self.opened_at))
        else:  # half-open: every trial is out
            assert self.trials_out == HALF_OPEN_CALLS

    @rule(issued=consumes(permits), failed=st.booleans())
    def end(self, issued: Issued, failed: bool) -> None:
        before, period = self.breaker.state, self.period
        outcomes_before, passed_before = self.outcomes, self.trials_passed  # a transition resets the model's
        issued.permit.record(failed)
        issued.permit.record(not failed)  # a second record counts for nothing
        if issued.period != period:
            assert (self.breaker.state, self.period) == (before, period)  # a late permit changes nothing
            return
        if issued.trial:
            if failed:
                assert self.breaker.state is BreakerState.OPEN
            else:
                self.trials_passed = passed_before + 1
                if self.trials_passed >= HALF_OPEN_CALLS:
                    assert self.breaker.state is BreakerState.CLOSED
                else:
                    assert self.breaker.state is BreakerState.HALF_OPEN
            return
        outcomes = [*outcomes_before, failed][-WINDOW:]
        opens = len(outcomes) >= MINIMUM_CALLS and sum(outcomes) / len(outcomes) >= FAILURE_RATE
        assert self.breaker.state is (BreakerState.OPEN if opens else BreakerState.CLOSED)
        if not opens:
            self.outcomes = outcomes

    @rule(issued=consumes(permits))
    def cancel(self, issued: Issued) -> None:
        """Left without an outcome (cancelled): a trial of this period is handed back, nothing is recorded."""
        before, period = self.breaker.state, self.period
        with issued.permit:
            pass
        assert (self.breaker.state, self.period) == (before, period)
        if issued.trial and issued.period == period:
            self.trials_out -= 1

    @precondition(lambda self: self.breaker.state is BreakerState.HALF_OPEN)
    @invariant()
    def never_more_trials_than_allowed(self) -> None:
        assert 0 <= self.trials_out <= HALF_OPEN_CALLS


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
pytestmark = pytest.mark.requirement("NFR-2")

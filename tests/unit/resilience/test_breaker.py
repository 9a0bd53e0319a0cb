"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from app.src.resilience.breaker import BreakerOpenError, BreakerState, CircuitBreaker, Permit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, transitions: list[tuple[str, str]] | None = None) -> CircuitBreaker:
    def record(previous: BreakerState, current: BreakerState) -> None:
        if transitions is not None:
            transitions.append((previous.name, current.name))

    return CircuitBreaker(
        window=4, minimum_calls=4, failure_rate=0.5, open_seconds=10, half_open_calls=2, clock=clock,
        on_transition=record,
    )  # fmt: skip


def call(circuit: CircuitBreaker, failed: bool) -> None:
    with circuit.permit() as permit:
        if failed:
            permit.failed()
        else:
            permit.succeeded()


def left_without_an_outcome(circuit: CircuitBreaker) -> Permit:
    """A call that took a permit and was cancelled before it had an outcome to record."""
    permit = circuit.permit()
    with pytest.raises(asyncio.CancelledError), permit:
        raise asyncio.CancelledError
    return permit


def open_it(circuit: CircuitBreaker) -> None:
    for failed in (True, True, False, False):
        call(circuit, failed)


@pytest.mark.requirement("NFR-2")
def test_opens_when_the_failure_rate_reaches_the_threshold_over_the_minimum_calls() -> None:
    circuit = breaker(Clock())
    for failed in (True, True, False):
        call(circuit, failed)
    assert circuit.state.name == "CLOSED"  # three calls: fewer than the minimum
    call(circuit, False)
    assert circuit.state.name == "OPEN"  # 2 of 4 failed: 50%
    with pytest.raises(BreakerOpenError):
        circuit.permit()


def test_stays_closed_below_the_threshold() -> None:
    circuit = breaker(Clock())
    for failed in (True, False, False, False, True, False, False, False):
        call(circuit, failed)
    assert circuit.state.name == "CLOSED"


@pytest.mark.requirement("NFR-2")
def test_half_open_after_the_open_duration_with_limited_trials_then_closes_on_success() -> None:
    clock, transitions = Clock(), list[tuple[str, str]]()
    circuit = breaker(clock, transitions)
    open_it(circuit)
    clock.now += 9.9
    with pytest.raises(BreakerOpenError):
        circuit.permit()
    clock.now += 0.1
    first, second = circuit.permit(), circuit.permit()
    assert circuit.state.name == "HALF_OPEN"
    with pytest.raises(BreakerOpenError):
        circuit.permit()  # only two trials at a time
    first.succeeded()
    second.succeeded()
    assert circuit.state.name == "CLOSED"
    assert transitions == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


def test_a_failed_trial_opens_it_again_for_a_full_period() -> None:
    clock = Clock()
    circuit = breaker(clock)
    open_it(circuit)
    clock.now += 10
    call(circuit, failed=True)
    assert circuit.state.name == "OPEN"
    clock.now += 9
    with pytest.raises(BreakerOpenError):
        circuit.permit()


@pytest.mark.requirement("NFR-2")
def test_a_trial_left_without_an_outcome_hands_its_permit_back() -> None:
    clock = Clock()
    circuit = breaker(clock)
    open_it(circuit)
    clock.now += 10
    for _ in range(5):  # each trial is cancelled: the permits come back every time
        left_without_an_outcome(circuit)
    assert circuit.state.name == "HALF_OPEN"
    call(circuit, failed=False)
    call(circuit, failed=False)
    assert circuit.state.name == "CLOSED"


def test_an_outcome_is_recorded_once() -> None:
    circuit = breaker(Clock())
    with circuit.permit() as permit:
        permit.failed()
        permit.failed()
        permit.succeeded()
    for _ in range(2):
        call(circuit, failed=False)
    call(circuit, failed=True)
    assert circuit.state.name == "OPEN"  # 2 failures of 4, not 3 of 6


@pytest.mark.requirement("NFR-2")
def test_a_trial_from_an_earlier_half_open_period_counts_for_nothing_in_the_current_one() -> None:
    clock = Clock()
    circuit = breaker(clock)
    open_it(circuit)
    clock.now += 10
    late = circuit.permit()  # a trial of the first half-open period, still on its way
    call(circuit, failed=True)  # the other trial fails: open again
    clock.now += 10
    first = circuit.permit()  # the second half-open period
    late.succeeded()  # the first period's trial ends now: it says nothing of the provider today
    first.succeeded()
    assert circuit.state.name == "HALF_OPEN"  # one trial of this period passed, two are needed
    call(circuit, failed=False)
    assert circuit.state.name == "CLOSED"


def test_a_trial_from_an_earlier_period_hands_back_no_permit_of_the_current_one() -> None:
    clock = Clock()
    circuit = breaker(clock)
    open_it(circuit)
    clock.now += 10
    late = circuit.permit()
    call(circuit, failed=True)
    clock.now += 10
    held = [circuit.permit(), circuit.permit()]  # every trial permit of this period is out
    late.__exit__(None, None, None)  # the earlier trial leaves without an outcome
    with pytest.raises(BreakerOpenError):
        circuit.permit()
    assert len(held) == 2


def test_a_failure_that_leaves_the_window_is_forgotten() -> None:
    circuit = breaker(Clock())
    for failed in (True, False, False, False, False):  # the failure has left the last four calls
        call(circuit, failed)
    call(circuit, failed=True)
    assert circuit.state.name == "CLOSED"  # one failure in four
    call(circuit, failed=True)
    assert circuit.state.name == "OPEN"  # two in four: the rate reached


def test_a_breaker_without_a_transition_callback_opens_and_closes() -> None:
    clock = Clock()
    circuit = CircuitBreaker(window=2, minimum_calls=2, failure_rate=0.5, open_seconds=1, half_open_calls=1,
                             clock=clock)  # fmt: skip
    call(circuit, failed=True)
    call(circuit, failed=True)
    assert circuit.state.name == "OPEN"
    clock.now += 1
    call(circuit, failed=False)
    assert circuit.state.name == "CLOSED"


def test_the_refusal_says_when_the_next_trial_comes() -> None:
    clock = Clock()
    circuit = breaker(clock)
    open_it(circuit)
    clock.now += 5.5
    with pytest.raises(BreakerOpenError) as refused:
        circuit.permit()
    assert refused.value.retry_in == 4.5
    assert str(refused.value) == "circuit open; the next trial in 4.50 s"
    clock.now += 4.5
    trials = [circuit.permit(), circuit.permit()]
    with pytest.raises(BreakerOpenError) as busy:
        circuit.permit()  # half-open, every trial out: the next may come as soon as one ends
    assert busy.value.retry_in == 0.0
    assert len(trials) == 2


def test_a_permit_left_unrecorded_counts_for_nothing_even_if_recorded_later() -> None:
    clock = Clock()
    circuit = breaker(clock)
    open_it(circuit)
    clock.now += 10
    trial = left_without_an_outcome(circuit)  # cancelled: the trial is handed back
    trial.failed()  # too late: it was settled when it left the block
    assert circuit.state.name == "HALF_OPEN"
    closed = breaker(clock)
    for _ in range(4):
        left_without_an_outcome(closed).failed()
    assert closed.state.name == "CLOSED"  # four calls left unrecorded: no failure counted

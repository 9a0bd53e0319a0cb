"""The simulators' clock: frozen, moved and resumed for everyone or for one scope, and every change announced
with the scope it touched (the payments simulator settles what came due on that scope's clock)."""

from __future__ import annotations

import time

import pytest

from simulators.engine.clock import SimClock

T = 1_800_000_000.0


def test_a_scope_takes_its_own_clock_from_the_shared_one_when_it_first_moves() -> None:
    clock = SimClock()
    clock.freeze(T)
    clock.advance(5, scope="s")
    assert (clock.now("s"), clock.now(), clock.now("other")) == (T + 5, T, T)
    assert clock.frozen("s")


def test_freezing_without_a_time_stops_the_clock_where_it_stands() -> None:
    clock = SimClock()
    before = time.time()
    clock.freeze(scope="s")
    assert clock.frozen("s")
    assert not clock.frozen()
    assert before <= clock.now("s") <= time.time()


def test_advancing_a_running_clock_adds_up() -> None:
    clock = SimClock()
    clock.advance(100)
    clock.advance(100)
    assert clock.now() - time.time() == pytest.approx(200, abs=1)


def test_resuming_keeps_the_lead_a_frozen_clock_had() -> None:
    clock = SimClock()
    clock.freeze(time.time() + 1000)
    clock.resume()
    assert not clock.frozen()
    assert clock.now() - time.time() == pytest.approx(1000, abs=1)


def test_reset_with_no_scope_takes_every_clock_back_and_with_a_scope_only_that_one() -> None:
    clock = SimClock()
    clock.advance(100, scope="a")
    clock.advance(100, scope="b")
    clock.reset("a")
    assert clock.now("a") == pytest.approx(time.time(), abs=1)
    assert clock.now("b") - time.time() == pytest.approx(100, abs=1)
    clock.advance(100)
    clock.reset()
    assert clock.now() == pytest.approx(time.time(), abs=1)
    assert clock.now("b") == pytest.approx(time.time(), abs=1)


def test_every_change_is_announced_with_the_scope_it_touched() -> None:
    clock = SimClock()
    heard: list[str | None] = []
    clock.on_change(heard.append)
    clock.freeze(T, scope="a")
    clock.advance(1, scope="b")
    clock.resume(scope="c")
    clock.reset(scope="d")
    clock.advance(1)
    assert heard == ["a", "b", "c", "d", None]

"""Latency distributions: within tolerance of their parameters over many draws, and within their bounds."""

from __future__ import annotations

import random
import statistics

import pytest

from simulators.engine.distributions import Fixed, LogNormal, Normal, Uniform

DRAWS = 20_000


def draws(distribution: Fixed | Uniform | Normal | LogNormal, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [distribution.sample(rng) for _ in range(DRAWS)]


def test_fixed_is_always_its_value() -> None:
    assert set(draws(Fixed(ms=25))) == {25}


def test_uniform_stays_in_bounds_and_centres_on_the_middle() -> None:
    values = draws(Uniform(min_ms=10, max_ms=30))
    assert min(values) >= 10
    assert max(values) <= 30
    assert statistics.fmean(values) == pytest.approx(20, abs=0.3)


def test_normal_has_its_mean_and_spread_and_is_never_negative() -> None:
    values = draws(Normal(mean_ms=50, stddev_ms=10))
    assert statistics.fmean(values) == pytest.approx(50, abs=0.5)
    assert statistics.stdev(values) == pytest.approx(10, abs=0.5)
    assert min(draws(Normal(mean_ms=1, stddev_ms=5))) >= 0


def test_lognormal_has_its_median_a_long_tail_and_never_passes_its_cap() -> None:
    values = draws(LogNormal(median_ms=40, sigma=0.8, cap_ms=400))
    assert statistics.median(values) == pytest.approx(40, rel=0.05)
    assert statistics.fmean(values) > statistics.median(values)  # the tail pulls the mean up
    assert max(values) == 400


def test_same_seed_gives_the_same_draws() -> None:
    distribution = LogNormal(median_ms=40, sigma=0.8, cap_ms=400)
    assert draws(distribution, seed=7) == draws(distribution, seed=7)
    assert draws(distribution, seed=7) != draws(distribution, seed=8)


def test_uniform_refuses_reversed_bounds() -> None:
    with pytest.raises(ValueError, match="max_ms"):
        Uniform(min_ms=30, max_ms=10)

"""The SLO gate: each bound a row, a breach fails the run (exit 1), and a run whose generator was the limit is
invalid (exit 3) whatever the service did; Locust's CSV read as Locust writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from load.profile import Percentiles, Profile, Slos, Stage
from load.slo import RATE_LIMITED, SHED, Outcome, RequestStats, RunStats, judge, read_locust_csv


def profile(**slos: object) -> Profile:
    return Profile(
        name="test", description="", stages=[Stage(duration=100, users=10, spawn_rate=100)], pace=1.0,
        slos=Slos.model_validate({"max_error_ratio": 0.01, **slos}),
    )  # fmt: skip


def stats(requests: int = 1000, failures: int = 0, shed: int = 0, limited: int = 0, p99: float = 100,
          started: int = 1000, cpu: list[float] | None = None) -> RunStats:  # fmt: skip
    overall = RequestStats("Aggregated", requests, failures, p99 / 2, p99)
    by_name = {"/api/catalog/items": RequestStats("/api/catalog/items", requests, failures, p99 / 2, p99)}
    return RunStats(by_name, overall, shed, limited, started, cpu or [20.0] * 50)


def test_a_run_within_every_bound_passes() -> None:
    verdict = judge(profile(overall=Percentiles(p99_ms=200)), stats())
    assert verdict.outcome is Outcome.PASS
    assert all(row.passed for row in verdict.rows)


def test_an_impossible_slo_fails_with_its_row_shown() -> None:
    verdict = judge(profile(requests={"/api/catalog/items": Percentiles(p99_ms=1)}), stats(p99=100))
    assert verdict.outcome is Outcome.FAIL
    failed = [row for row in verdict.rows if not row.passed]
    assert [(row.slo, row.bound, row.measured) for row in failed] == [("/api/catalog/items: p99", "<= 1 ms", "100 ms")]
    assert "/api/catalog/items: p99" in verdict.table()
    assert "FAIL" in verdict.table()


def test_a_request_name_the_run_never_sent_fails() -> None:
    verdict = judge(profile(requests={"/api/nothing": Percentiles(p95_ms=100)}), stats())
    assert verdict.outcome is Outcome.FAIL


def test_shed_and_rate_limited_answers_have_ceilings_of_their_own_and_are_not_errors() -> None:
    within = judge(profile(max_shed_ratio=0.05, max_rate_limited_ratio=0.02), stats(failures=60, shed=40, limited=15))
    assert within.outcome is Outcome.PASS  # 5 other failures: 0.5% errors
    over = judge(profile(max_shed_ratio=0.01), stats(failures=40, shed=40))
    assert [row.slo for row in over.rows if not row.passed] == ["shed (503) ratio"]


def test_errors_over_the_ratio_fail() -> None:
    verdict = judge(profile(), stats(failures=11))
    assert [row.slo for row in verdict.rows if not row.passed] == ["error ratio"]


def test_too_few_requests_fail() -> None:
    assert judge(profile(min_requests=5000), stats()).outcome is Outcome.FAIL


@pytest.mark.parametrize(
    ("started", "cpu", "reason"),
    [
        (940, [20.0] * 50, "offered rate was not reached"),  # under 95% of the 1000 journeys offered
        (1000, [95.0] * 6 + [20.0] * 44, "its CPU, not the service"),  # saturated in 12% of the samples
    ],
)
def test_a_run_the_generator_limited_is_invalid_whatever_the_slos_say(
    started: int, cpu: list[float], reason: str
) -> None:
    verdict = judge(profile(), stats(started=started, cpu=cpu))
    assert verdict.outcome is Outcome.INVALID
    assert int(verdict.outcome) == 3
    assert any(reason in because for because in verdict.invalid_because)


def test_a_generator_at_the_edge_is_still_valid() -> None:
    verdict = judge(profile(), stats(started=950, cpu=[95.0] * 5 + [20.0] * 45))
    assert verdict.outcome is Outcome.PASS


def test_locusts_csv_is_read_with_failures_by_kind(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    header = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    header += "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
    header += "99.99%,100%"
    Path(f"{prefix}_stats.csv").write_text(
        f"{header}\n"
        "GET,/api/catalog/items,900,30,12,15,1,300,2000,30,1,12,14,16,18,25,40,60,80,200,300,300\n"
        ",Aggregated,1000,35,12,15,1,300,2000,33,1,12,14,16,18,25,45,70,95,200,300,300\n"
    )
    Path(f"{prefix}_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        f"GET,/api/catalog/items,CatchResponseError('{SHED}'),20\n"
        f"GET,/api/catalog/items,CatchResponseError('{RATE_LIMITED}'),10\n"
        "GET,/api/catalog/items,CatchResponseError('unexpected 500: ...'),5\n"
    )
    read = read_locust_csv(prefix, journeys_started=400, generator_cpu_samples=[10.0])
    assert read.overall == RequestStats("Aggregated", 1000, 35, 45.0, 95.0)
    assert read.by_name["/api/catalog/items"].p99_ms == 80.0
    assert (read.shed, read.rate_limited, read.journeys_started) == (20, 10, 400)

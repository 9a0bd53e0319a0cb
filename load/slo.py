"""The SLO gate: a run's numbers (Locust's CSV, and what the generator itself recorded) against the profile's
SLOs. A verdict is PASS, FAIL (some SLO breached: exit 1) or INVALID (the generator, not the service, was the
limit: exit 3), with one row per SLO. Pure: no Locust here."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path

from load.profile import Profile

SHED = "shed (503)"
RATE_LIMITED = "rate limited (429)"
MIN_ACHIEVED_SHARE = 0.95  # of the journeys the profile should have started
MAX_SATURATED_SHARE = 0.10  # of the generator's CPU samples at 90% of a core or more
SATURATED_CPU = 90.0


class Outcome(IntEnum):
    """The process's exit status for each verdict."""

    PASS = 0
    FAIL = 1
    INVALID = 3


@dataclass(frozen=True)
class RequestStats:
    name: str
    requests: int
    failures: int
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class RunStats:
    """What a run measured: by request name, overall, failures by kind, and the generator's own health."""

    by_name: dict[str, RequestStats]
    overall: RequestStats
    shed: int
    rate_limited: int
    journeys_started: int
    generator_cpu_samples: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    slo: str
    bound: str
    measured: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    rows: list[Row]
    invalid_because: list[str]

    def table(self) -> str:
        width = max([len(row.slo) for row in self.rows] + [20])
        lines = [f"{'SLO':<{width}}  {'bound':>12}  {'measured':>12}  verdict"]
        lines += [
            f"{row.slo:<{width}}  {row.bound:>12}  {row.measured:>12}  {'pass' if row.passed else 'FAIL'}"
            for row in self.rows
        ]
        lines += [f"INVALID RUN: {reason}" for reason in self.invalid_because]
        lines.append(f"verdict: {self.outcome.name}")
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {
                "verdict": self.outcome.name,
                "rows": [asdict(row) for row in self.rows],
                "invalid_because": self.invalid_because,
            },
            indent=2,
        )


def judge(profile: Profile, stats: RunStats) -> Verdict:
    rows = _slo_rows(profile, stats)
    invalid = _invalid_because(profile, stats)
    if invalid:
        outcome = Outcome.INVALID
    elif all(row.passed for row in rows):
        outcome = Outcome.PASS
    else:
        outcome = Outcome.FAIL
    return Verdict(outcome, rows, invalid)


def _slo_rows(profile: Profile, stats: RunStats) -> list[Row]:
    slos = profile.slos
    total = stats.overall.requests
    rows = [Row("requests sent", f">= {slos.min_requests}", str(total), total >= slos.min_requests)]
    rows += _percentile_rows("overall", slos.overall.p95_ms, slos.overall.p99_ms, stats.overall)
    for name, bounds in sorted(slos.requests.items()):
        measured = stats.by_name.get(name)
        if measured is None:
            rows.append(Row(f"{name}: requests", "> 0", "0", passed=False))
            continue
        rows += _percentile_rows(name, bounds.p95_ms, bounds.p99_ms, measured)
    errors = stats.overall.failures - stats.shed - stats.rate_limited
    for label, count, bound in (
        ("error ratio", errors, slos.max_error_ratio),
        ("shed (503) ratio", stats.shed, slos.max_shed_ratio),
        ("rate-limited (429) ratio", stats.rate_limited, slos.max_rate_limited_ratio),
    ):
        ratio = count / total if total else 0.0
        rows.append(Row(label, f"<= {bound:.2%}", f"{ratio:.2%}", ratio <= bound))
    return rows


def _percentile_rows(name: str, p95: float | None, p99: float | None, measured: RequestStats) -> list[Row]:
    rows = []
    for label, bound, value in (("p95", p95, measured.p95_ms), ("p99", p99, measured.p99_ms)):
        if bound is not None:
            rows.append(Row(f"{name}: {label}", f"<= {bound:g} ms", f"{value:g} ms", value <= bound))
    return rows


def _invalid_because(profile: Profile, stats: RunStats) -> list[str]:
    reasons = []
    expected = profile.expected_starts()
    if expected > 0 and stats.journeys_started < MIN_ACHIEVED_SHARE * expected:
        reasons.append(
            f"the generator started {stats.journeys_started} journeys of the {expected:.0f} the profile offers "
            f"({stats.journeys_started / expected:.0%}, under {MIN_ACHIEVED_SHARE:.0%}): the offered rate was not "
            "reached (more LOAD_PROCESSES, or a lower pace)"
        )
    samples = stats.generator_cpu_samples
    saturated = sum(1 for sample in samples if sample >= SATURATED_CPU)
    if samples and saturated / len(samples) > MAX_SATURATED_SHARE:
        reasons.append(
            f"a generator process used {SATURATED_CPU:.0f}% of a core or more in {saturated} of {len(samples)} "
            "samples: its CPU, not the service, limited the run (more LOAD_PROCESSES)"
        )
    return reasons


def read_locust_csv(prefix: Path, journeys_started: int, generator_cpu_samples: list[float]) -> RunStats:
    """Locust's `--csv PREFIX` files: PREFIX_stats.csv (by name, and the Aggregated row) and PREFIX_failures.csv."""
    by_name: dict[str, RequestStats] = {}
    overall = RequestStats("Aggregated", 0, 0, 0.0, 0.0)
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        for line in csv.DictReader(handle):
            row = RequestStats(
                line["Name"],
                int(line["Request Count"]),
                int(line["Failure Count"]),
                _milliseconds(line["95%"]),
                _milliseconds(line["99%"]),
            )
            if line["Name"] == "Aggregated":
                overall = row
            else:
                by_name[row.name] = row
    shed = rate_limited = 0
    with Path(f"{prefix}_failures.csv").open(newline="") as handle:
        for line in csv.DictReader(handle):
            if SHED in line["Error"]:
                shed += int(line["Occurrences"])
            elif RATE_LIMITED in line["Error"]:
                rate_limited += int(line["Occurrences"])
    return RunStats(by_name, overall, shed, rate_limited, journeys_started, generator_cpu_samples)


def _milliseconds(text: str) -> float:
    return 0.0 if text in ("", "N/A") else float(text)

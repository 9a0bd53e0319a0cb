"""A pytest plugin for mutant runs: the tests that have killed mutants of the same function run first, then the
quickest.

mutmut runs a mutant's tests with `-x` (the first failure ends the run) in no particular order. The mutants of one
function are mostly killed by the same few tests (the lockout test kills every mutant of the lockout), so each test
that fails is written to MUTATION_KILLERS with the function it killed a mutant of (a line a failure, appended by
the forked children side by side), and the next mutant's tests are ordered by how many mutants of its function
each has killed, then by the time each took in mutmut's first run (mutants/mutmut-stats.json). Counting kills of
other functions' mutants too put a slow test first everywhere once it had killed where no quick test could. A
surviving mutant still runs every test; a killed one gets there sooner.

Active only in a mutant's run (MUTANT_UNDER_TEST names a mutant) with MUTATION_KILLERS set: harness/mutation.py
sets it for each part.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

STATS = Path("mutmut-stats.json")  # in mutants/, where mutmut runs the tests


def _mutated() -> tuple[Path, str] | None:
    """The killers' file and the mutated function (the mutant's name without its number), in a mutant's run."""
    path, mutant = os.environ.get("MUTATION_KILLERS"), os.environ.get("MUTANT_UNDER_TEST", "")
    function, marked, _ = mutant.rpartition("__mutmut_")
    return (Path(path), function) if path and marked else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if (mutated := _mutated()) is None:
        return
    killers, function = mutated
    lines = killers.read_text().splitlines() if killers.exists() else []
    kills = Counter(test for killed, _, test in (line.partition("\t") for line in lines) if killed == function)
    durations: dict[str, float] = json.loads(STATS.read_text())["duration_by_test"] if STATS.exists() else {}
    items.sort(key=lambda item: (-kills[item.nodeid], durations.get(item.nodeid, float("inf"))))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and (mutated := _mutated()) is not None:
        killers, function = mutated
        with killers.open("a") as written:  # one short line in append mode: children's lines never interleave
            written.write(f"{function}\t{report.nodeid}\n")

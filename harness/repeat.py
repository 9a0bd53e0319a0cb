"""`make test-repeat N=5`: the whole suite N times, each in a random order of its own (pytest-random-order over
the whole session, a seed per run, printed to reproduce it) and in parallel as `make test` runs; then every test
that failed or errored in any run, with the runs and seeds it failed in. Exit 1 when any did: a test that fails
once in five is a defect of the harness, not bad luck. `make test` itself keeps the fixed order.

    python -m harness.repeat N [pytest arguments ...]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree  # nosec B405 - reads the report pytest just wrote
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports" / "repeat"


def failed_tests(junit: Path) -> list[str]:
    """The tests a JUnit XML report says failed or errored, as its class names and test names."""
    return [
        f"{case.get('classname')}::{case.get('name')}"
        for case in ElementTree.parse(junit).getroot().iter("testcase")  # noqa: S314 - our own report
        if case.find("failure") is not None or case.find("error") is not None
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=int)
    parser.add_argument("pytest_arguments", nargs=argparse.REMAINDER)
    arguments = parser.parse_args()
    REPORTS.mkdir(parents=True, exist_ok=True)
    failures: dict[str, list[str]] = defaultdict(list)
    broken_runs = []
    for run in range(1, arguments.runs + 1):
        seed = random.SystemRandom().randint(1, 10**6)
        junit = REPORTS / f"run-{run}.xml"
        junit.unlink(missing_ok=True)
        print(f"run {run}/{arguments.runs}: --random-order-seed={seed}", flush=True)
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
             "--random-order-bucket=global", f"--random-order-seed={seed}", f"--junitxml={junit}",
             *arguments.pytest_arguments],
            cwd=ROOT, check=False,
        )  # fmt: skip
        print(f"run {run}: exit {done.returncode} in {time.monotonic() - began:.0f} s", flush=True)
        if not junit.exists():
            broken_runs.append(f"run {run} (seed {seed}) left no report: exit {done.returncode}")
            continue
        for test in failed_tests(junit):
            failures[test].append(f"run {run} (seed {seed})")
    print(f"\n{arguments.runs} runs in random order:", "no test failed" if not failures else "")
    for test, runs in sorted(failures.items()):
        print(f"  {test}: failed in {', '.join(runs)}")
    for broken in broken_runs:
        print(f"  {broken}")
    sys.exit(1 if failures or broken_runs else 0)


if __name__ == "__main__":
    main()

"""`make mutation [PART=resilience]`: mutmut 3 over the modules that carry requirement logic (harness/parts.py),
each part in a copy of the working tree of its own (.mutation/<part>/), on the PostgreSQL `make test` would use
(TEST_DB_URI, else the embedded one, started once for the whole run). Then per part: mutants generated, killed,
survived, and the survivors listed as equivalent in harness/equivalent.toml or as not measurable in
harness/not-measurable.toml (each with why); the figures go into harness/mutation-results.json and the table in
docs/harness.md. Exit 1 when a survivor is listed in neither.

    python -m harness.mutation [PART ...] [--max-children N] [--survivors]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.parts import BY_NAME, PARTS, Part

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
RESULTS = ROOT / "harness" / "mutation-results.json"
EQUIVALENT = ROOT / "harness" / "equivalent.toml"
NOT_MEASURABLE = ROOT / "harness" / "not-measurable.toml"
DOC = ROOT / "docs" / "harness.md"
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"

# mutmut's exit codes of a mutant's test run (mutmut/__main__.py, status_by_exit_code), grouped as reported here
KILLED, SURVIVED, NO_TESTS, TIMEOUT = {1, 3}, {0}, {5, 33}, {-24, 24, 36, 152, 255}


@dataclass(frozen=True)
class PartResult:
    part: str
    generated: int
    killed: int
    survived: int
    equivalent: int
    timeout: int
    no_tests: int
    other: int
    seconds: float
    date: str
    commit: str
    not_measurable: int = 0  # survivors in code that runs only at import, before mutmut's fork picks the mutant

    @property
    def killed_share(self) -> float:
        """Killed (or out of time, which is a kill: the mutant hung the code) among the non-equivalent tested."""
        tested = self.generated - self.no_tests - self.equivalent - self.not_measurable
        return (self.killed + self.timeout) / tested if tested else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", choices=[[], *BY_NAME], metavar="PART", help=", ".join(BY_NAME))
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--survivors", action="store_true",
                        help="test again only the last run's survivors (and mutants of functions changed since), "
                             "with the tests as they are now")  # fmt: skip
    arguments = parser.parse_args()
    chosen = [BY_NAME[name] for name in arguments.parts] or list(PARTS)
    explained = _listed(EQUIVALENT), _listed(NOT_MEASURABLE)
    unexplained: dict[str, list[str]] = {}
    with _database() as database_uri:
        for part in chosen:
            result, survivors = _run(part, database_uri, arguments.max_children, explained, arguments.survivors)
            _store(result)
            print(
                f"{part.name}: {result.generated} mutants, {result.killed} killed, {result.timeout} out of time, "
                f"{result.survived} survived ({result.equivalent} equivalent, {result.not_measurable} not measurable), "
                f"{result.no_tests} without a test; "
                f"{result.killed_share:.1%} of the non-equivalent killed, in {result.seconds / 60:.1f} min",
                flush=True,
            )
            if survivors:
                unexplained[part.name] = survivors
    _write_doc()
    for name, survivors in unexplained.items():
        print(f"\n{name}: survivors neither killed nor listed as equivalent or not measurable (mutmut show NAME in "
              f".mutation/{name}):")  # fmt: skip
        for survivor in survivors:
            print(f"  {survivor}")
    sys.exit(1 if unexplained else 0)


@contextmanager
def _database() -> Iterator[str]:
    """TEST_DB_URI as `make test` takes it; else the embedded PostgreSQL, started once here."""
    if given := os.environ.get("TEST_DB_URI"):
        yield given
        return
    from app.dev.embedded_postgres import embedded_postgres

    with embedded_postgres(ROOT / ".data" / "mutation-postgres") as uri:
        yield uri


def _run(
    part: Part,
    database_uri: str,
    max_children: int,
    explained: tuple[dict[str, str], dict[str, str]],
    again: bool,
) -> tuple[PartResult, list[str]]:
    work = WORK / part.name
    survivors_before = _survivors(work / "mutants") if again and (work / "mutants").exists() else None
    _copy_tree(work, keep_mutants=survivors_before is not None)
    with (work / "pyproject.toml").open("a") as pyproject:
        pyproject.write(_mutmut_table(part))
    began = time.monotonic()
    log = work / "mutmut.log"
    with log.open("w") as output:
        done = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *(survivors_before or [])],
            cwd=work,
            # TEST_DB_KEEP: a child's run takes a kept database and empties it, rather than cloning one (0.4 s)
            env=os.environ
            | {"TEST_DB_URI": database_uri, "TEST_DB_KEEP": "1", "MUTATION_KILLERS": str(work / "killers")},
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"mutmut failed on {part.name} (exit {done.returncode}): see {log}")
    codes = _exit_codes(work / "mutants")
    statuses = Counter(_status(code) for code in codes.values())
    survivors = sorted(name for name, code in codes.items() if _status(code) == "survived")
    equivalent, not_measurable = explained
    result = PartResult(
        part=part.name,
        generated=len(codes),
        killed=statuses["killed"],
        survived=statuses["survived"],
        equivalent=sum(name in equivalent for name in survivors),
        not_measurable=sum(name in not_measurable for name in survivors),
        timeout=statuses["timeout"],
        no_tests=statuses["no tests"],
        other=statuses["other"],
        seconds=round(time.monotonic() - began + (_stored_seconds(part.name) if survivors_before else 0.0), 1),
        date=dt.datetime.now(dt.UTC).date().isoformat(),
        commit=_commit(),
    )
    return result, [name for name in survivors if name not in equivalent and name not in not_measurable]


def _copy_tree(work: Path, *, keep_mutants: bool) -> None:
    """The working tree as git sees it (tracked and new files, uncommitted changes included), nothing ignored;
    mutmut's own state (mutants/) kept only to test some mutants again."""
    if work.exists() and not keep_mutants:
        shutil.rmtree(work)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)


# The tests that have killed mutants first (harness/kill_first.py); a bound on each test's wall time (below).
PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "no:random_order", "-p", "harness.kill_first", "--timeout=30"]


def _mutmut_table(part: Part) -> str:
    def array(values: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(value) for value in values) + "]"

    return (
        "\n[tool.mutmut]\n"
        f"source_paths = {array(['app', 'simulators'])}\n"
        f"only_mutate = {array(part.modules)}\n"
        f"pytest_add_cli_args_test_selection = {array(part.tests)}\n"
        # mutmut bounds a mutant's CPU time, not its wall time: a mutant that leaves a test waiting (on a lock, an
        # event, a row) would hold its worker for pytest-timeout's 120 s; no test of ours takes 30.
        f"pytest_add_cli_args = {array(PYTEST_ARGS)}\n"
        # mutmut's own bound on a child's wall time, (the time its tests took in the first run + 10 s) x 3: its
        # default, x 15, let one child hung in a test's teardown hold its core for minutes
        "timeout_multiplier = 3.0\ntimeout_constant = 10.0\n"
        f"also_copy = {array(['migrations/', 'alembic.ini', 'load/', 'docs/', 'harness/'])}\n"
    )


def _exit_codes(mutants: Path) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    for meta in mutants.rglob("*.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def _survivors(mutants: Path) -> list[str]:
    """The last run's survivors, and the mutants never tested (those of a function changed since)."""
    return sorted(name for name, code in _exit_codes(mutants).items() if code is None or _status(code) == "survived")


def _status(code: int | None) -> str:
    for status, group in (("killed", KILLED), ("survived", SURVIVED), ("no tests", NO_TESTS), ("timeout", TIMEOUT)):
        if code in group:
            return status
    return "other"


def _listed(path: Path) -> dict[str, str]:
    """Mutant name -> why it survives: it behaves as the original (equivalent.toml), or mutmut cannot run it
    (not-measurable.toml)."""
    if not path.exists():
        return {}
    return {name: str(reason) for name, reason in tomllib.loads(path.read_text()).items()}


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _stored_seconds(part: str) -> float:
    """The time the part's full run took (and any re-runs of survivors since)."""
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    return float(stored.get(part, {}).get("seconds", 0.0))


def _store(result: PartResult) -> None:
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored[result.part] = asdict(result)
    RESULTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def _write_doc() -> None:
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    lines = [
        "| part | mutants | killed | out of time | survived | equivalent | not measurable | no test ran them "
        "| killed of the rest | minutes (full run + re-runs) | date | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for part in PARTS:
        if part.name not in stored:
            lines.append(f"| {part.name} | not run yet | | | | | | | | | | |")
            continue
        result = PartResult(**stored[part.name])
        lines.append(
            f"| {part.name} | {result.generated} | {result.killed} | {result.timeout} | {result.survived} "
            f"| {result.equivalent} | {result.not_measurable} | {result.no_tests} | {result.killed_share:.1%} "
            f"| {result.seconds / 60:.1f} "
            f"| {result.date} | {result.commit} |"
        )
    text = DOC.read_text() if DOC.exists() else f"# The harness proves itself\n\n{BEGIN}\n{END}\n"
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    DOC.write_text(f"{before}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{after}")


if __name__ == "__main__":
    main()

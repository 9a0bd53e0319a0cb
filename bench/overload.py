"""`make bench-overload`: what the service does with more than it can take. GET /api/auth/me (an authenticated
database read) on one core: its capacity, two ways (wrk's closed-loop maximum, and the breakpoint: the highest rate
a server without a limit keeps up with, offered open loop in steps of 5% of wrk's figure), its idle p99 (open loop
at 10% of wrk's figure), then offered load from 0.5x to 2x wrk's figure, the larger, open loop (bench/open_loop.py:
arrivals that never wait for earlier answers), with inbound shedding on (the service's defaults) and off (no
concurrency limit). Per rate: goodput (200s a second answered within 1 s), the p99 of accepted requests, the p99 of
shed answers (503), and, at 2x, the accepted p99 in each 2-second interval. The API runs on core 0; the generator,
PostgreSQL and wrk share core 1.

This machine's speed drifts by half within minutes, so a capacity measured once would not hold for a rate offered
minutes later: shedding on is measured in `--rounds` rounds, each measuring the capacity and the idle p99 again right
before its offers, and each ratio (goodput over that round's capacity, accepted p99 over that round's idle p99) is
the median of the rounds'. Shedding off is offered once, at the last round's figure, each rate to a fresh server.

Writes the table and a plot (docs/performance-overload.png) into docs/performance.md between its markers.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass

import psutil

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from app.settings import new_token_key
from bench.open_loop import ANSWER_TIMEOUT
from bench.read import ACCOUNT, _post
from bench.sessions import bearer_script
from bench.wrk import LOAD_CORE, ROOT, free_port, pinned_server, wrk

ROUTE = "/api/auth/me"
# Shedding off: no concurrency limit, and no 503 from the read pool either (its checkout waits DB_CONNECT_TIMEOUT,
# 5 s by default, then refuses: a shedder too, only a late one, and its refusals hid how long the queue had grown).
UNLIMITED = {"INBOUND_CONCURRENCY": "1000000", "INBOUND_BUSY_TARGET": "off", "DB_CONNECT_TIMEOUT": "300"}
MULTIPLES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
INTERVAL_SECONDS = 2
USEFUL_MS = 1000  # goodput counts the 200s answered within this: a later answer has lost its client
# A server keeps up with a rate while it answers every request, at p99 within this. Past its capacity the backlog
# grows through the step: 2% over it, the last answers of a 5-second step wait 100 ms.
BREAKPOINT_P99_MS = 100
BREAKPOINT_STEP = 0.05  # of the closed-loop maximum
BREAKPOINT_SECONDS = 5
DOC = ROOT / "docs" / "performance.md"
PLOT = ROOT / "docs" / "performance-overload.png"
BEGIN, END = "<!-- overload:begin -->", "<!-- overload:end -->"


@dataclass(frozen=True)
class Offered:
    multiple: float
    rate: float
    goodput: float
    accepted_p99: float
    shed_p99: float | None
    shed_share: float
    failed: int
    lag_ms: float
    interval_p99s: list[float]
    interval_unanswered: list[float]  # the share of each interval's requests never answered
    answered_p99s: list[float]  # the p99 of the 200s answered in each interval, as a dashboard sees it over time
    load_core_busy: float  # the share of the run the generator's core (with PostgreSQL) was busy


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def offer(url: str, token: str, rate: float, seconds: float, multiple: float) -> Offered:
    _quiet()
    command = [
        "taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.open_loop", url, "--rate", f"{rate:.1f}",
        "--seconds", str(seconds), "--header", f"Authorization: Bearer {token}", "--header", "X-Client-Id: bench",
    ]  # fmt: skip
    before = psutil.cpu_times(percpu=True)[int(LOAD_CORE)]
    done = subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    after = psutil.cpu_times(percpu=True)[int(LOAD_CORE)]
    result = json.loads(done.stdout)
    samples = result["samples"]
    accepted = [ms for _, status, ms in samples if status == 200]
    useful = sum(1 for ms in accepted if ms <= USEFUL_MS)
    shed = [ms for _, status, ms in samples if status == 503]
    intervals: dict[int, list[tuple[int, float]]] = {}
    # A request never answered counts with the time it waited: left out, it would flatter the late intervals,
    # where most requests of an overloaded server without a limit never get an answer.
    for at, status, ms in samples:
        if status != 503:
            intervals.setdefault(int(at // INTERVAL_SECONDS), []).append((status, ms))
    each = [values for _, values in sorted(intervals.items())]
    answered: dict[int, list[float]] = {}
    for at, status, ms in samples:
        if status == 200:
            answered.setdefault(int((at + ms / 1000) // INTERVAL_SECONDS), []).append(ms)
    idle = after.idle - before.idle
    total = sum(after) - sum(before)
    return Offered(
        multiple, rate, useful / seconds, _p99(accepted), _p99(shed) if shed else None,
        len(shed) / len(samples), sum(1 for _, status, _ in samples if status not in (200, 503)),
        result["lag_ms"], [_p99([ms for _, ms in values]) for values in each],
        [sum(1 for status, _ in values if status == 0) / len(values) for values in each],
        [_p99(values) for _, values in sorted(answered.items())], 1 - idle / total if total else 0.0,
    )  # fmt: skip


def signed_in(base: str, environment: dict[str, str]) -> str:
    """A verified account, made as an operator makes one, signed in: its access token."""
    subprocess.run(
        [sys.executable, "-m", "app", "users", "create", ACCOUNT["email"], "--display-name", "Reader"],
        input=ACCOUNT["password"] + "\n", text=True, check=True, capture_output=True, env=environment, cwd=ROOT,
    )  # fmt: skip
    credentials = {"email": ACCOUNT["email"], "password": ACCOUNT["password"]}
    return _post(f"{base}/api/auth/login", credentials)["access_token"]


def main() -> None:
    arguments = _arguments()
    seconds = arguments.seconds * 2
    # This process and what it starts (PostgreSQL) stay on the load core; each server is started on core 0. Left
    # to the scheduler, PostgreSQL ran on the API's core too: the API then lost its core while it had work, and the
    # busy limit read that as time to spare.
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    with embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri:
        asyncio.run(upgrade(database_uri))
        common = {
            **os.environ, "PROFILE": "test", "DB_URI": database_uri, "TOKEN_KEYS": new_token_key(),
            "CLIENT_RATE": "off", "ADDRESS_RATE": "off", "CONNECTIONS_PER_PEER": "off", "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(ROOT / ".data"),
        }  # fmt: skip
        if arguments.limits or arguments.busy_targets or arguments.variant:
            _sweep(common, _variants(arguments), arguments, seconds)
            return
        with _server(common) as shedding_on:
            token = signed_in(shedding_on, common)
            rounds = [_round(shedding_on, common, token, arguments, seconds) for _ in range(arguments.rounds)]
            capacity = rounds[-1].closed_loop
            # Each rate to a fresh server: one without a limit goes on answering requests whose clients have gone
            # for minutes after an overload, on the API's core, and is killed instead.
            unlimited_runs = []
            for multiple in MULTIPLES:
                with _unlimited(common) as unlimited:
                    unlimited_runs.append(offer(unlimited + ROUTE, token, capacity * multiple, seconds, multiple))
    report = _report(rounds, unlimited_runs, seconds)
    print(report)
    _plot(rounds, unlimited_runs)
    _write_doc(report)


@dataclass(frozen=True)
class Round:
    """Shedding on: the capacity and idle p99 measured right before each rate was offered."""

    closed_loop: float
    breakpoint: float
    idle_p99: float
    runs: list[Offered]


def _round(
    shedding_on: str, common: dict[str, str], token: str, arguments: argparse.Namespace, seconds: float
) -> Round:
    closed_loop, breakpoint_rate = _capacity(common, token, arguments)
    idle_p99 = offer(shedding_on + ROUTE, token, closed_loop * 0.1, seconds, 0.1).accepted_p99
    runs = [offer(shedding_on + ROUTE, token, closed_loop * multiple, seconds, multiple) for multiple in MULTIPLES]
    return Round(closed_loop, breakpoint_rate, idle_p99, runs)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="half the length of one offered rate; wrk's runs")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections when measuring capacity")
    parser.add_argument("--limits", help="instead: 2x capacity offered to a server per fixed INBOUND_CONCURRENCY given")
    parser.add_argument("--busy-targets", help="and to one per INBOUND_BUSY_TARGET given (the limit follows the loop)")
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "SETTING=VALUE"),
                        help="and to one with these settings (repeat for more)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of measurement (a sweep: offers to each variant, in turns)")  # fmt: skip
    return parser.parse_args()


@contextmanager
def _server(environment: dict[str, str], *, graceful: bool = True) -> Iterator[str]:
    """A server on core 0."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with pinned_server(
        ["-m", "app", "serve"], f"{base}/api/common/health", environment | {"LISTEN_PORT": str(port)}, graceful=graceful
    ) as process:
        server = psutil.Process(process.pid)
        _SERVERS.append(server)
        try:
            yield base
        finally:
            _SERVERS.remove(server)


def _unlimited(common: dict[str, str]) -> AbstractContextManager[str]:
    """A server without a limit, killed at the end: after an overload, a graceful stop would wait for its backlog."""
    return _server(common | UNLIMITED, graceful=False)


_SERVERS: list[psutil.Process] = []


def _quiet() -> None:
    """Until every server is idle: one that was overloaded goes on answering requests whose clients have gone,
    on the same core as the next measurement (at most a minute)."""
    for server in _SERVERS:
        server.cpu_percent(interval=None)  # from now on
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if sum(server.cpu_percent(interval=None) for server in _SERVERS) < 5:
            return


def _capacity(common: dict[str, str], token: str, arguments: argparse.Namespace) -> tuple[float, float]:
    """wrk's closed-loop maximum on a server without a limit (200s a second, median of 3), and the breakpoint.

    The closed loop overstates what the server can take from arrivals that come one by one: wrk's 32 connections
    each send again the moment they are answered, and the server handles them in batches, a turn of its loop and a
    wake-up shared by many: the same server spent 4%, 16% and 63% more of its CPU time on a request arriving open
    loop at 0.7x of wrk's rate (three rounds, 2026-12-03). The breakpoint is offered the way the overload will be."""
    with _unlimited(common) as unlimited:
        script = bearer_script(token, ROOT / ".data" / "overload-me.lua")
        wrk(unlimited + ROUTE, 2, arguments.connections, script)  # warm-up
        runs = [wrk(unlimited + ROUTE, arguments.seconds, arguments.connections, script) for _ in range(3)]
    closed_loop = float(statistics.median(run.requests_per_second - run.non_2xx / arguments.seconds for run in runs))

    def keeps_up(step: int) -> bool:
        rate = closed_loop * BREAKPOINT_STEP * step
        with _unlimited(common) as unlimited:  # a fresh one: a step past the breakpoint leaves a backlog
            run = offer(unlimited + ROUTE, token, rate, BREAKPOINT_SECONDS, rate / closed_loop)
        return not (run.failed or run.shed_share or run.accepted_p99 > BREAKPOINT_P99_MS)

    # Up from half the closed-loop maximum to the first step it cannot keep up with (at most one and a half times
    # it); if it cannot keep up with half, down to the first step it can (5% at the least).
    passed = list(itertools.takewhile(keeps_up, range(10, 31)))
    step = passed[-1] if passed else next((step for step in range(9, 1, -1) if keeps_up(step)), 1)
    return closed_loop, closed_loop * BREAKPOINT_STEP * step


def _variants(arguments: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The servers `--limits`, `--busy-targets` and `--variant` name, each by its settings."""
    variants = {
        f"fixed {limit}": {"INBOUND_CONCURRENCY": limit, "INBOUND_BUSY_TARGET": "off"}
        for limit in (arguments.limits or "").split(",")
        if limit
    }
    for target in (arguments.busy_targets or "").split(","):
        if target:
            variants[f"busy {target}"] = {"INBOUND_BUSY_TARGET": target}
    for name, *settings in arguments.variant or []:
        variants[name] = dict(setting.split("=", 1) for setting in settings)
    return variants


def _sweep(
    common: dict[str, str], variants: dict[str, dict[str, str]], arguments: argparse.Namespace, seconds: float
) -> None:
    """`--limits 4,8,16 --busy-targets 0.8,0.9`: which limit holds accepted latency at 2x and keeps the goodput, each
    variant's server offered 2x in turns, `--rounds` times; the medians."""
    with ExitStack() as servers:
        unlimited = servers.enter_context(_unlimited(common))
        bases = {name: servers.enter_context(_server(common | settings)) for name, settings in variants.items()}
        token = signed_in(unlimited, common)
        capacity, breakpoint_rate = _capacity(common, token, arguments)
        idle_p99 = offer(unlimited + ROUTE, token, capacity * 0.1, seconds, 0.1).accepted_p99
        runs: dict[str, list[Offered]] = {name: [] for name in variants}
        for _ in range(arguments.rounds):
            for name, base in bases.items():
                runs[name].append(offer(base + ROUTE, token, capacity * 2, seconds, 2.0))
    lines = [
        f"GET {ROUTE} offered at 2x the capacity ({capacity:,.0f} req/s, wrk's closed loop, no limit; the breakpoint "
        f"of a server without a limit, open loop: {breakpoint_rate:,.0f}; idle p99 "
        f"{idle_p99:.2f} ms, 3x: {3 * idle_p99:.1f} ms), {seconds:g} s each, {arguments.rounds} rounds in turns; "
        "medians:",
        "",
        "| limit | goodput / capacity | accepted p99 ms | shed p99 ms | shed | load core busy | p99 by interval ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, offered in runs.items():
        shed = [run.shed_p99 for run in offered if run.shed_p99 is not None]
        lines.append(
            f"| {name} | {statistics.median(run.goodput for run in offered) / capacity:.2f} "
            f"| {statistics.median(run.accepted_p99 for run in offered):.1f} "
            f"| {statistics.median(shed) if shed else float('nan'):.1f} "
            f"| {statistics.median(run.shed_share for run in offered):.0%} "
            f"| {statistics.median(run.load_core_busy for run in offered):.0%} "
            f"| {' / '.join(', '.join(f'{value:.0f}' for value in run.interval_p99s) for run in offered)} |"
        )
    print("\n".join(lines))


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _report(rounds: list[Round], unlimited: list[Offered], seconds: float) -> str:
    max_wait_ms = 1000 * float(os.environ.get("INBOUND_MAX_WAIT", "0.1"))
    breakpoints = ", ".join(f"{each.breakpoint:,.0f}" for each in rounds)
    closed_loops = ", ".join(f"{each.closed_loop:,.0f}" for each in rounds)
    idles = ", ".join(f"{each.idle_p99:.2f}" for each in rounds)
    lines = [
        f"GET {ROUTE}, API on core 0; generator, PostgreSQL and wrk on core 1. Shedding on: {len(rounds)} rounds, each "
        f"measuring the capacity (wrk's closed-loop maximum on a server without a limit: {closed_loops} req/s; the "
        f"breakpoint of such a server, open loop: {breakpoints}) and the idle p99 (open loop at 10%: {idles} ms) right "
        "before its offers; rates are offered as multiples of wrk's figure; the medians of the rounds. Shedding off: "
        "once, at the last round's figure, each rate "
        f"to a fresh server. Each rate offered for {seconds:g} s, open loop.",
        "",
        "| offered | shedding | goodput / closed loop | goodput / breakpoint | accepted p99 ms "
        "| accepted p99 / idle p99 | shed p99 ms | shed "
        "| no answer | generator lag ms | load core busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, multiple in enumerate(MULTIPLES):
        on = [(each, each.runs[index]) for each in rounds]
        shed = [run.shed_p99 for _, run in on if run.shed_p99 is not None]
        lines.append(
            f"| {multiple:g}x | on | {_median([run.goodput / each.closed_loop for each, run in on]):.2f} "
            f"| {_median([run.goodput / each.breakpoint for each, run in on]):.2f} "
            f"| {_median([run.accepted_p99 for _, run in on]):.1f} "
            f"| {_median([run.accepted_p99 / each.idle_p99 for each, run in on]):.1f} "
            f"| {f'{_median(shed):.1f}' if shed else '-'} | {_median([run.shed_share for _, run in on]):.0%} "
            f"| {sum(run.failed for _, run in on)} | {_median([run.lag_ms for _, run in on]):.1f} "
            f"| {_median([run.load_core_busy for _, run in on]):.0%} |"
        )
        off, last = unlimited[index], rounds[-1]
        idle = last.idle_p99
        lines.append(
            f"| {multiple:g}x | off | {off.goodput / last.closed_loop:.2f} | {off.goodput / last.breakpoint:.2f} "
            f"| {off.accepted_p99:.1f} "
            f"| {off.accepted_p99 / idle:.1f} | - | {off.shed_share:.0%} | {off.failed} | {off.lag_ms:.1f} "
            f"| {off.load_core_busy:.0%} |"
        )
    for number, each in enumerate(rounds, 1):
        at_twice = each.runs[-1]
        lines.append(
            f"\nAt 2x, shedding on, round {number}: goodput {at_twice.goodput / each.closed_loop:.2f} of wrk's "
            f"{each.closed_loop:,.0f} req/s, {at_twice.goodput / each.breakpoint:.2f} of the breakpoint's "
            f"{each.breakpoint:,.0f}; "
            f"p99 of the requests not shed by {INTERVAL_SECONDS}-second interval of arrival (ms): "
            f"{', '.join(f'{value:.0f}' for value in at_twice.interval_p99s)} (idle p99 {each.idle_p99:.2f} ms)"
        )
    at_twice = unlimited[-1]
    each_p99 = ", ".join(f"{value:.0f}" for value in at_twice.interval_p99s)
    lines.append(
        f"\nAt 2x, shedding off: p99 of the requests not shed (answered, or the time one never answered waited), by "
        f"{INTERVAL_SECONDS}-second interval of arrival (ms): {each_p99}; "
        f"never answered (within {ANSWER_TIMEOUT:.0f} s): "
        f"{', '.join(f'{share:.0%}' for share in at_twice.interval_unanswered)}; p99 of the answers (200) by "
        f"{INTERVAL_SECONDS}-second interval in which they came, as a dashboard shows it (ms): "
        f"{', '.join(f'{value:.0f}' for value in at_twice.answered_p99s)}"
    )
    twice = [(each, each.runs[-1]) for each in rounds]
    shed = [run.shed_p99 for _, run in twice if run.shed_p99 is not None]
    latency = _median([run.accepted_p99 / each.idle_p99 for each, run in twice])
    lines += [
        "",
        f"Targets at 2x with shedding on (medians of the rounds): goodput >= 90% of capacity (the breakpoint, as "
        f"issue 16 measures it): {_median([run.goodput / each.breakpoint for each, run in twice]):.0%} of it "
        f"({_median([run.goodput / each.closed_loop for each, run in twice]):.0%} of wrk's closed-loop maximum, "
        "which open-loop arrivals cannot reach); accepted p99 <= 3x idle p99: "
        f"{latency:.1f}x; shed p99 <= INBOUND_MAX_WAIT + 5 ms "
        f"({max_wait_ms + 5:.0f} ms): {f'{_median(shed):.1f} ms' if shed else '-'}.",
    ]
    return "\n".join(lines)


def _plot(rounds: list[Round], unlimited: list[Offered]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (goodput, latency) = plt.subplots(1, 2, figsize=(11, 4))
    on_goodput = [
        _median([each.runs[index].goodput / each.closed_loop for each in rounds]) for index in range(len(MULTIPLES))
    ]
    on_p99 = [_median([each.runs[index].accepted_p99 for each in rounds]) for index in range(len(MULTIPLES))]
    capacity = rounds[-1].closed_loop
    goodput.plot(MULTIPLES, on_goodput, "o-", label="shedding on")
    latency.plot(MULTIPLES, on_p99, "o-", label="shedding on")
    goodput.plot(MULTIPLES, [run.goodput / capacity for run in unlimited], "s--", label="shedding off")
    latency.plot(MULTIPLES, [run.accepted_p99 for run in unlimited], "s--", label="shedding off")
    breakpoint_share = _median([each.breakpoint / each.closed_loop for each in rounds])
    goodput.axhline(breakpoint_share, color="grey", linestyle=":", label="breakpoint (no limit, open loop)")
    goodput.set(xlabel="offered load (x closed-loop maximum)", ylabel="goodput (x closed-loop maximum)",
                title="Goodput")  # fmt: skip
    latency.set(xlabel="offered load (x closed-loop maximum)", ylabel="accepted p99 (ms, log)", title="Accepted p99",
                yscale="log")  # fmt: skip
    for axes in (goodput, latency):
        axes.grid(visible=True, alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)


def _write_doc(report: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    DOC.write_text(f"{before}{BEGIN}\n{report}\n\n![goodput and p99](performance-overload.png)\n{END}{after}")


if __name__ == "__main__":
    main()

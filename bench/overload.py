"""`make bench-overload`: what the service does with more than it can take. GET /api/auth/me (an authenticated
database read) on one core: its capacity (the closed-loop maximum, wrk), its idle p99 (open loop at 10% of it),
then offered load from 0.5x to 2x capacity, open loop (bench/open_loop.py: arrivals that never wait for earlier
answers), with inbound shedding on (the service's defaults) and off (no concurrency limit). Per rate: goodput
(200s a second answered within 1 s), the p99 of accepted requests, the p99 of shed answers (503), and, at 2x,
the accepted p99 in each 2-second interval. The API runs on core 0; the generator, PostgreSQL and wrk share core 1.

Writes the table and a plot (docs/performance-overload.png) into docs/performance.md between its markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
    idle = after.idle - before.idle
    total = sum(after) - sum(before)
    return Offered(
        multiple, rate, useful / seconds, _p99(accepted), _p99(shed) if shed else None,
        len(shed) / len(samples), sum(1 for _, status, _ in samples if status not in (200, 503)),
        result["lag_ms"], [_p99([ms for _, ms in values]) for values in each],
        [sum(1 for status, _ in values if status == 0) / len(values) for values in each],
        1 - idle / total if total else 0.0,
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
        # Both servers stay up (an idle one costs nothing) and each rate is offered to one, then the other: this
        # machine's speed drifts over minutes, and the comparison is the one thing to trust.
        shedding = {"off": common | UNLIMITED, "on": dict(common)}
        with ExitStack() as servers:
            bases = {mode: servers.enter_context(_server(environment)) for mode, environment in shedding.items()}
            token = signed_in(bases["on"], common)
            capacity = _capacity(bases["off"], token, arguments)
            idle_p99 = offer(bases["on"] + ROUTE, token, capacity * 0.1, seconds, 0.1).accepted_p99
            results: dict[str, list[Offered]] = {mode: [] for mode in shedding}
            for multiple in MULTIPLES:
                for mode, base in bases.items():
                    results[mode].append(offer(base + ROUTE, token, capacity * multiple, seconds, multiple))
    report = _report(capacity, idle_p99, results, seconds)
    print(report)
    _plot(capacity, results)
    _write_doc(report)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="half the length of one offered rate; wrk's runs")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections when measuring capacity")
    parser.add_argument("--limits", help="instead: 2x capacity offered to a server per fixed INBOUND_CONCURRENCY given")
    parser.add_argument("--busy-targets", help="and to one per INBOUND_BUSY_TARGET given (the limit follows the loop)")
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "SETTING=VALUE"),
                        help="and to one with these settings (repeat for more)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="with any: offers to each, taken in turns")
    return parser.parse_args()


@contextmanager
def _server(environment: dict[str, str]) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with pinned_server(
        ["-m", "app", "serve"], f"{base}/api/common/health", environment | {"LISTEN_PORT": str(port)}
    ) as process:
        _SERVERS.append(psutil.Process(process.pid))
        yield base


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


def _capacity(base: str, token: str, arguments: argparse.Namespace) -> float:
    """The closed-loop maximum of a server without a limit: wrk's connections, 200s a second (median of 3)."""
    script = bearer_script(token, ROOT / ".data" / "overload-me.lua")
    wrk(base + ROUTE, 2, arguments.connections, script)  # warm-up
    runs = [wrk(base + ROUTE, arguments.seconds, arguments.connections, script) for _ in range(3)]
    return float(statistics.median(run.requests_per_second - run.non_2xx / arguments.seconds for run in runs))


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
        unlimited = servers.enter_context(_server(common | UNLIMITED))
        bases = {name: servers.enter_context(_server(common | settings)) for name, settings in variants.items()}
        token = signed_in(unlimited, common)
        capacity = _capacity(unlimited, token, arguments)
        idle_p99 = offer(unlimited + ROUTE, token, capacity * 0.1, seconds, 0.1).accepted_p99
        runs: dict[str, list[Offered]] = {name: [] for name in variants}
        for _ in range(arguments.rounds):
            for name, base in bases.items():
                runs[name].append(offer(base + ROUTE, token, capacity * 2, seconds, 2.0))
    lines = [
        f"GET {ROUTE} offered at 2x the capacity ({capacity:,.0f} req/s, closed loop, no limit; idle p99 "
        f"{idle_p99:.2f} ms, 3x: {3 * idle_p99:.1f} ms), {seconds:g} s each, {arguments.rounds} rounds in turns; "
        "medians:",
        "",
        "| limit | goodput / capacity | accepted p99 ms | shed p99 ms | shed | load core busy |",
        "|---|---|---|---|---|---|",
    ]
    for name, offered in runs.items():
        shed = [run.shed_p99 for run in offered if run.shed_p99 is not None]
        lines.append(
            f"| {name} | {statistics.median(run.goodput for run in offered) / capacity:.2f} "
            f"| {statistics.median(run.accepted_p99 for run in offered):.1f} "
            f"| {statistics.median(shed) if shed else float('nan'):.1f} "
            f"| {statistics.median(run.shed_share for run in offered):.0%} "
            f"| {statistics.median(run.load_core_busy for run in offered):.0%} |"
        )
    print("\n".join(lines))


def _report(capacity: float, idle_p99: float, results: dict[str, list[Offered]], seconds: float) -> str:
    max_wait_ms = 1000 * float(os.environ.get("INBOUND_MAX_WAIT", "0.1"))
    lines = [
        f"GET {ROUTE}, API on core 0; generator, PostgreSQL and wrk on core 1. Capacity (wrk, closed loop): "
        f"{capacity:,.0f} req/s; idle p99 (open loop at 10%): {idle_p99:.2f} ms. Each rate offered for "
        f"{seconds:g} s, open loop.",
        "",
        "| offered | shedding | goodput req/s | goodput / capacity | accepted p99 ms | shed p99 ms | shed | no answer "
        "| generator lag ms | load core busy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for multiple_index, multiple in enumerate(MULTIPLES):
        for mode in ("on", "off"):
            run = results[mode][multiple_index]
            shed = "-" if run.shed_p99 is None else f"{run.shed_p99:.1f}"
            lines.append(
                f"| {multiple:g}x ({run.rate:,.0f}/s) | {mode} | {run.goodput:,.0f} | {run.goodput / capacity:.2f} "
                f"| {run.accepted_p99:.1f} | {shed} | {run.shed_share:.0%} | {run.failed} | {run.lag_ms:.1f} "
                f"| {run.load_core_busy:.0%} |"
            )
    for mode in ("on", "off"):
        at_twice = results[mode][-1]
        each = ", ".join(f"{value:.0f}" for value in at_twice.interval_p99s)
        unanswered = ", ".join(f"{share:.0%}" for share in at_twice.interval_unanswered)
        lines.append(
            f"\nAt 2x, shedding {mode}: p99 of the requests not shed (answered, or the time one never answered "
            f"waited), by {INTERVAL_SECONDS}-second interval of arrival (ms): {each}; never answered (within "
            f"{ANSWER_TIMEOUT:.0f} s): {unanswered}"
        )
    twice = results["on"][-1]
    lines += [
        "",
        f"Targets at 2x with shedding on: goodput >= 90% of capacity: {twice.goodput / capacity:.0%}; accepted p99 "
        f"<= 3x idle ({3 * idle_p99:.1f} ms): {twice.accepted_p99:.1f} ms; shed p99 <= INBOUND_MAX_WAIT + 5 ms "
        f"({max_wait_ms + 5:.0f} ms): {'-' if twice.shed_p99 is None else f'{twice.shed_p99:.1f} ms'}.",
    ]
    return "\n".join(lines)


def _plot(capacity: float, results: dict[str, list[Offered]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (goodput, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, style in (("on", "o-"), ("off", "s--")):
        offered = [run.multiple for run in results[mode]]
        goodput.plot(offered, [run.goodput / capacity for run in results[mode]], style, label=f"shedding {mode}")
        latency.plot(offered, [run.accepted_p99 for run in results[mode]], style, label=f"shedding {mode}")
    goodput.set(xlabel="offered load (x capacity)", ylabel="goodput (x capacity)", title="Goodput")
    latency.set(xlabel="offered load (x capacity)", ylabel="accepted p99 (ms, log)", title="Accepted p99", yscale="log")
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

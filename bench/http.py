"""`make bench`: GET /api/common/health through our full stack vs a minimal Quart app.

Each server is pinned to core 0 and wrk to core 1; the two are measured in turns (hello, service, hello, ...) so
that a noisy neighbour affects both alike. Prints the median requests/s and p99 of three runs, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.embedded_postgres import embedded_postgres
from app.schema import upgrade

ROOT = Path(__file__).resolve().parent.parent
ROUTE = "/api/common/health"
SERVER_CORE, LOAD_CORE = "0", "1"


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p99_ms: float


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _server(command: list[str], port: int, environment: dict[str, str]) -> Iterator[str]:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, sys.executable, *command],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}{ROUTE}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start: {process.stderr.read()!r}") from None  # type: ignore[union-attr]
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wrk(url: str, seconds: int, connections: int) -> Run:
    output = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", output).groups()  # type: ignore[union-attr]
    return Run(rate, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    arguments = parser.parse_args()

    uvicorn_flags = ["--no-access-log", "--log-level", "warning"]
    with embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri:
        asyncio.run(upgrade(database_uri))
        hello_port, service_port = _free_port(), _free_port()
        service_env = {
            **os.environ,
            "PROFILE": "test",
            "DB_URI": database_uri,
            "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": str(service_port),
            "DATA_DIR": str(ROOT / ".data"),
        }
        hello = ["-m", "uvicorn", "bench.hello_app:app", "--port", str(hello_port), *uvicorn_flags]
        with (
            _server(hello, hello_port, dict(os.environ)) as hello_url,
            _server(["-m", "app", "serve"], service_port, service_env) as service_url,
        ):
            for url in (hello_url, service_url):
                _wrk(url, 2, arguments.connections)  # warm-up
            results: dict[str, list[Run]] = {"minimal Quart": [], "full stack": []}
            for _ in range(arguments.runs):
                results["minimal Quart"].append(_wrk(hello_url, arguments.seconds, arguments.connections))
                results["full stack"].append(_wrk(service_url, arguments.seconds, arguments.connections))

    medians = {name: statistics.median(run.requests_per_second for run in runs) for name, runs in results.items()}
    print(f"GET {ROUTE}, {arguments.connections} connections, median of {arguments.runs} x {arguments.seconds}s")
    print(f"{'':<14}{'req/s':>10}{'p99 ms':>10}   runs (req/s)")
    for name, runs in results.items():
        p99 = statistics.median(run.p99_ms for run in runs)
        each = ", ".join(f"{run.requests_per_second:,.0f}" for run in runs)
        print(f"{name:<14}{medians[name]:>10,.0f}{p99:>10.2f}   {each}")
    ratio = medians["full stack"] / medians["minimal Quart"]
    print(f"ratio full stack / minimal Quart: {ratio:.2f} (target >= 0.70)")


if __name__ == "__main__":
    main()

"""Running wrk pinned to its own core, and a server pinned to another, for the benchmarks."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE, LOAD_CORE = "0", "1"


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p99_ms: float
    non_2xx: int
    cpu_us_per_request: float | None = None  # the server's own CPU time (user + system) per request served


def load_arguments(description: str | None) -> argparse.Namespace:
    """--runs, --seconds and --connections of a wrk benchmark."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3, help="measurements of each kind, taken in turns")
    parser.add_argument("--seconds", type=int, default=5, help="length of one measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk's open connections")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def pinned_server(
    command: list[str],
    ready_url: str,
    environment: dict[str, str] | None = None,
    ready_status: int = 200,
    core: str = SERVER_CORE,
    graceful: bool = True,
) -> Iterator[subprocess.Popen[bytes]]:
    """`python <command>` on `core` until the block ends; it is up once `ready_url` answers `ready_status`."""
    process = subprocess.Popen(
        ["taskset", "-c", core, sys.executable, *command],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=1):  # nosec B310 # noqa: S310 - loopback only
                    break
            except urllib.error.HTTPError as answered:
                if answered.code == ready_status:
                    break
                raise
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start") from None
                time.sleep(0.2)
        yield process
    finally:
        if graceful:
            process.terminate()
        else:
            process.kill()
        process.wait(timeout=30)


def _cpu_seconds(server: subprocess.Popen[bytes] | None) -> float:
    if server is None:
        return 0.0
    times = psutil.Process(server.pid).cpu_times()
    return float(times.user + times.system)


def wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, server: subprocess.Popen[bytes] | None = None
) -> Run:
    """One measurement; with `server`, also the CPU time that process spent per request."""
    command = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    cpu_before = _cpu_seconds(server)
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    cpu = _cpu_seconds(server) - cpu_before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", output).groups()  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    served = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return Run(
        rate,
        float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit],
        int(non_2xx.group(1)) if non_2xx else 0,
        cpu / served * 1e6 if server is not None and served else None,
    )

"""`make bench-read`: GET /api/auth/me (a bearer token checked against its live session, then the user read)
through the full stack vs a minimal Quart app running the same two reads with plain asyncpg (bench/read_app.py).

Each server is pinned to core 0 and the load to core 1, measured in turns as `make bench` does. Then the full
stack's latency at 80% of the capacity just measured, with paced arrivals (h2load --rps, per-request log): its
p99/p50. wrk is closed-loop: under it, latency is whatever the queue makes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from app.settings import new_token_key
from bench.sessions import bearer_script, latest_session
from bench.wrk import LOAD_CORE, ROOT, Run, free_port, load_arguments, pinned_server, wrk

ROUTE = "/api/auth/me"
ACCOUNT = {"email": "reader@example.org", "password": "a long benchmark passphrase", "display_name": "Reader"}


def _post(url: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", "X-Client-Id": "bench"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310 # noqa: S310
        answer: dict[str, str] = json.loads(response.read())
        return answer


def _signed_in(base: str) -> str:
    _post(f"{base}/api/auth/register", ACCOUNT)
    return _post(f"{base}/api/auth/login", {"email": ACCOUNT["email"], "password": ACCOUNT["password"]})["access_token"]


def _paced(url: str, token: str, rate: float, seconds: int, directory: Path) -> list[float]:
    """Latencies (ms) of requests sent at `rate` a second in all, by 16 clients on the load core."""
    log = directory / "h2load.log"
    clients = 16
    command = [
        "taskset", "-c", LOAD_CORE, "h2load", "--h1", "-c", str(clients), f"--rps={rate / clients:.2f}",
        "-D", str(seconds), "-H", f"Authorization: Bearer {token}", "-H", "X-Client-Id: bench",
        f"--log-file={log}", url,
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    answered = (line.split("\t") for line in log.read_text().splitlines() if line)
    return sorted(int(duration) / 1000 for _, status, duration in answered if status == "200")


def main() -> None:
    arguments = load_arguments(__doc__)
    uvicorn_flags = ["--no-access-log", "--log-level", "warning"]
    with embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        asyncio.run(upgrade(database_uri))
        floor_port, service_port = free_port(), free_port()
        service_env = {
            **os.environ, "PROFILE": "test", "DB_URI": database_uri, "LISTEN_PORT": str(service_port),
            "TOKEN_KEYS": new_token_key(), "CLIENT_RATE": "off", "ADDRESS_RATE": "off",
            "CONNECTIONS_PER_PEER": "off", "DATA_DIR": str(ROOT / ".data"),
            # The stack's cost per request, not its shedding (make bench-overload): room for every connection.
            "INBOUND_CONCURRENCY": str(2 * max(arguments.connections, 16)),
            "INBOUND_BUSY_TARGET": "off",
        }  # fmt: skip
        service_url = f"http://127.0.0.1:{service_port}"
        with pinned_server(["-m", "app", "serve"], f"{service_url}/api/common/health", service_env):
            token = _signed_in(service_url)
            session_id = latest_session(database_uri)
            floor_env = {**os.environ, "BENCH_DB_URI": database_uri, "BENCH_SESSION_ID": session_id}
            floor = ["-m", "uvicorn", "bench.read_app:app", "--port", str(floor_port), *uvicorn_flags]
            floor_url = f"http://127.0.0.1:{floor_port}{ROUTE}"
            script = bearer_script(token, directory / "me.lua")
            with pinned_server(floor, f"http://127.0.0.1:{floor_port}/nothing-here", floor_env, ready_status=404):
                results: dict[str, list[Run]] = {"minimal asyncpg": [], "full stack": []}
                for url in (floor_url, service_url + ROUTE):
                    wrk(url, 2, arguments.connections, script)  # warm-up
                for _ in range(arguments.runs):
                    results["minimal asyncpg"].append(wrk(floor_url, arguments.seconds, arguments.connections, script))
                    results["full stack"].append(
                        wrk(service_url + ROUTE, arguments.seconds, arguments.connections, script)
                    )
            capacity = statistics.median(run.requests_per_second for run in results["full stack"])
            latencies = _paced(service_url + ROUTE, token, capacity * 0.8, arguments.seconds * 2, directory)
    _report(results, arguments.connections, arguments.runs, arguments.seconds, capacity, latencies)
    assert uuid.UUID(session_id)  # noqa: S101 - the floor read a real session


def _report(
    results: dict[str, list[Run]], connections: int, runs: int, seconds: int, capacity: float, latencies: list[float]
) -> None:
    medians = {name: statistics.median(run.requests_per_second for run in ran) for name, ran in results.items()}
    print(
        f"GET {ROUTE} (bearer token, live session, user row), {connections} connections, median of {runs} x {seconds}s"
    )
    print(f"{'':<17}{'req/s':>10}{'p99 ms':>10}   runs (req/s)   non-2xx")
    for name, ran in results.items():
        p99 = statistics.median(run.p99_ms for run in ran)
        each = ", ".join(f"{run.requests_per_second:,.0f}" for run in ran)
        print(f"{name:<17}{medians[name]:>10,.0f}{p99:>10.2f}   {each}   {sum(run.non_2xx for run in ran)}")
    print(
        f"ratio full stack / minimal asyncpg: {medians['full stack'] / medians['minimal asyncpg']:.2f} (target >= 0.75)"
    )
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"paced at 80% of capacity ({capacity * 0.8:,.0f} req/s, {len(latencies)} requests): "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99/p50 {p99 / p50:.1f} (target <= 10)")  # fmt: skip


if __name__ == "__main__":
    main()

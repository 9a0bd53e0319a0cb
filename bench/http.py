"""`make bench`: GET /api/common/health through our full stack vs a minimal Quart app.

Each server is pinned to core 0 and wrk to core 1; the two are measured in turns (hello, service, hello, ...) so
that a noisy neighbour affects both alike. Prints the median requests/s and p99 of three runs, and their ratio.
"""

from __future__ import annotations

import asyncio
import os
import statistics

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from bench.wrk import ROOT, Run, free_port, load_arguments, pinned_server, wrk

ROUTE = "/api/common/health"


def main() -> None:
    arguments = load_arguments(__doc__)

    uvicorn_flags = ["--no-access-log", "--log-level", "warning"]
    with embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri:
        asyncio.run(upgrade(database_uri))
        hello_port, service_port = free_port(), free_port()
        service_env = {
            **os.environ,
            "PROFILE": "test",
            "DB_URI": database_uri,
            "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": str(service_port),
            "DATA_DIR": str(ROOT / ".data"),
        }
        hello = ["-m", "uvicorn", "bench.hello_app:app", "--port", str(hello_port), *uvicorn_flags]
        hello_url = f"http://127.0.0.1:{hello_port}{ROUTE}"
        service_url = f"http://127.0.0.1:{service_port}{ROUTE}"
        with (
            pinned_server(hello, hello_url, dict(os.environ)),
            pinned_server(["-m", "app", "serve"], service_url, service_env),
        ):
            for url in (hello_url, service_url):
                wrk(url, 2, arguments.connections)  # warm-up
            results: dict[str, list[Run]] = {"minimal Quart": [], "full stack": []}
            for _ in range(arguments.runs):
                results["minimal Quart"].append(wrk(hello_url, arguments.seconds, arguments.connections))
                results["full stack"].append(wrk(service_url, arguments.seconds, arguments.connections))

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

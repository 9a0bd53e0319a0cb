"""`make bench-catalog`: GET /api/catalog/items (a page of 20) and GET /api/catalog/items/{id} through the full
stack (the mirror in memory; X-Client-Id checked, rate limiter, metrics, request ids, ETag) vs a minimal Quart +
quart-schema app answering a fixed page of the same shape (bench/catalog_app.py).

The catalog is a simulator's 1,000 products, mirrored once by `python -m app jobs run catalog_sync`. Each server is
pinned to core 0 and wrk to core 1; the kinds are measured in turns. Beside requests/s, the CPU time each server
spent per request (its user + system time over the run), so a ratio holds on a busier or quieter machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from bench.wrk import ROOT, Run, free_port, load_arguments, pinned_server, wrk
from simulators.server import BackgroundSimulator, build

API_KEY = "sk_test_proving_ground"
LIST = "/api/catalog/items?limit=20"


def _first_item(base: str) -> str:
    request = urllib.request.Request(f"{base}{LIST}", headers={"X-Client-Id": "bench"})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310 # noqa: S310
        page = json.loads(response.read())
    assert len(page["items"]) == 20, page  # noqa: S101 - the full stack serves a real page
    return str(page["items"][0]["id"])


def main() -> None:
    arguments = load_arguments(__doc__)
    uvicorn_flags = ["--no-access-log", "--log-level", "warning"]
    simulator = build("catalog", {"seed": 1, "initial_products": 1000, "change_every_seconds": 0, "rules": []})
    with (
        embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri,
        BackgroundSimulator(simulator) as catalog,
        tempfile.TemporaryDirectory() as tmp,
    ):
        asyncio.run(upgrade(database_uri))
        script = Path(tmp) / "client.lua"
        script.write_text('wrk.headers["X-Client-Id"] = "bench"\n')
        floor_port, service_port = free_port(), free_port()
        service_env = {
            **os.environ, "PROFILE": "test", "DB_URI": database_uri, "LISTEN_PORT": str(service_port),
            "CATALOG_URL": catalog.url, "CATALOG_API_KEY": API_KEY, "CLIENT_RATE": "off", "ADDRESS_RATE": "off",
            "CONNECTIONS_PER_PEER": "off", "DATA_DIR": str(ROOT / ".data"), "LOG_LEVEL": "WARNING",
            "INBOUND_CONCURRENCY": str(2 * arguments.connections),  # the stack's cost, not its shedding: room for all
            "INBOUND_BUSY_TARGET": "off",
        }  # fmt: skip
        subprocess.run([sys.executable, "-m", "app", "jobs", "run", "catalog_sync"], env=service_env, cwd=ROOT,
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        service = f"http://127.0.0.1:{service_port}"
        floor = f"http://127.0.0.1:{floor_port}"
        floor_command = ["-m", "uvicorn", "bench.catalog_app:app", "--port", str(floor_port), *uvicorn_flags]
        with (
            pinned_server(["-m", "app", "serve"], f"{service}/api/common/health", service_env) as full_process,
            pinned_server(floor_command, f"{floor}/nothing-here", ready_status=404) as floor_process,
        ):
            item = f"/api/catalog/items/{_first_item(service)}"
            results: dict[tuple[str, str], list[Run]] = {}
            servers = (("minimal", floor, floor_process), ("full", service, full_process))
            targets = [(route, name, base, process) for route in (LIST, item) for name, base, process in servers]
            for route, _, base, _ in targets:
                wrk(base + route, 2, arguments.connections, script)  # warm-up
            for _ in range(arguments.runs):
                for route, name, base, process in targets:
                    run = wrk(base + route, arguments.seconds, arguments.connections, script, process)
                    results.setdefault((route, name), []).append(run)
    _report(results, [LIST, item], arguments)


def _report(results: dict[tuple[str, str], list[Run]], routes: list[str], arguments: argparse.Namespace) -> None:
    print(f"make bench-catalog: {arguments.connections} connections, median of {arguments.runs} x "
          f"{arguments.seconds}s, server on core 0, wrk on core 1")  # fmt: skip
    print(f"{'route':<34}{'kind':<9}{'req/s':>9}{'p99 ms':>9}{'CPU µs/req':>12}   runs (req/s)   non-2xx")
    for route in routes:
        medians = {}
        for name in ("minimal", "full"):
            ran = results[(route, name)]
            rate = statistics.median(run.requests_per_second for run in ran)
            cpu = statistics.median(run.cpu_us_per_request or 0 for run in ran)
            p99 = statistics.median(run.p99_ms for run in ran)
            medians[name] = (rate, cpu)
            each = ", ".join(f"{run.requests_per_second:,.0f}" for run in ran)
            print(f"{route:<34}{name:<9}{rate:>9,.0f}{p99:>9.2f}{cpu:>12.0f}   {each}   "
                  f"{sum(run.non_2xx for run in ran)}")  # fmt: skip
        (floor_rate, floor_cpu), (full_rate, full_cpu) = medians["minimal"], medians["full"]
        print(f"{'':<34}ratio full/minimal: requests/s {full_rate / floor_rate:.2f}, "
              f"CPU per request {floor_cpu / full_cpu:.2f} (as a rate; target >= 0.60)")  # fmt: skip


if __name__ == "__main__":
    main()

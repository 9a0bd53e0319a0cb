"""`make bench-billing`: billing through the full stack vs a minimal Quart app doing the same database work and the
same provider call with plain asyncpg and aiohttp (bench/billing_app.py), each pinned to core 0; the payments
simulator, PostgreSQL and the load generator on core 1, for both sides alike.

(a) GET /api/billing/payments/{id} (bearer token, live session, the payment row);
(b) POST /api/billing/payments, each with a new Idempotency-Key (a wrk script numbers them): the key, phases
    (a), (b) and (c), the receipt in the outbox. Then the full stack's creates paced at 80% of the capacity just
    measured (an open-loop generator, bench/paced.py: wrk is closed-loop), its p99/p50.

Requests/s and the server's CPU time per request, median of the runs, taken in turns.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from app.settings import new_token_key
from bench.sessions import bearer_script, latest_session
from bench.wrk import LOAD_CORE, ROOT, Run, free_port, load_arguments, pinned_server, wrk

API_KEY = "sk_test_proving_ground"
EMAIL, PASSWORD = "payer@example.org", "a long benchmark passphrase"
PAYMENT = {"amount": 1250, "currency": "eur", "customer": "cus_bench", "description": "bench"}
CREATE = "/api/billing/payments"


def _call(url: str, body: dict[str, object] | None = None, headers: dict[str, str] | None = None) -> dict[str, str]:
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", "X-Client-Id": "bench", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=sent)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310 # noqa: S310
        answer: dict[str, str] = json.loads(response.read())
        return answer


def _account(database_uri: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "app", "users", "create", EMAIL, "--display-name", "Payer"], input=PASSWORD + "\n",
        text=True, check=True, capture_output=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PROFILE": "test", "DB_URI": database_uri},
    )  # fmt: skip


def _create_script(token: str, directory: Path) -> Path:
    """A new script for every run: its keys start with a prefix of their own, so no key is ever used twice."""
    script = directory / f"create-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["X-Client-Id"] = "bench"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{json.dumps(PAYMENT)}'\n"
        f'local prefix = "{uuid.uuid4().hex}"\n'
        "local counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  wrk.headers["Idempotency-Key"] = prefix .. "-" .. counter\n'
        f'  return wrk.format(nil, "{CREATE}")\n'
        "end\n"
    )
    return script


def _paced(url: str, token: str, rate: float, seconds: int) -> tuple[list[float], int]:
    command = [
        "taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.paced", "--url", url, "--token", token,
        "--rate", f"{rate:.1f}", "--seconds", str(seconds), "--body", json.dumps(PAYMENT),
    ]  # fmt: skip
    output = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout)
    return sorted(output["latencies"]), int(output["failed"])


def main() -> None:
    arguments = load_arguments(__doc__)
    uvicorn_flags = ["--no-access-log", "--log-level", "warning"]
    sim_port, floor_port, service_port = free_port(), free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    with (
        embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri,
        tempfile.TemporaryDirectory() as tmp,
        pinned_server(
            ["-m", "simulators", "payments", "--port", str(sim_port)], f"{sim_url}/__sim/clock", core=LOAD_CORE
        ),  # fmt: skip
    ):
        directory = Path(tmp)
        asyncio.run(upgrade(database_uri))
        _account(database_uri)
        service_env = {
            **os.environ, "PROFILE": "test", "DB_URI": database_uri, "LISTEN_PORT": str(service_port),
            "TOKEN_KEYS": new_token_key(), "CLIENT_RATE": "off", "ADDRESS_RATE": "off", "CONNECTIONS_PER_PEER": "off",
            "PAYMENTS_URL": sim_url, "PAYMENTS_API_KEY": API_KEY, "OUTBOX_MAX_PENDING": "100000000",
            "DATA_DIR": str(ROOT / ".data"),
            "INBOUND_CONCURRENCY": str(2 * arguments.connections),  # the stack's cost, not its shedding: room for all
            "INBOUND_BUSY_TARGET": "off",
        }  # fmt: skip
        service = f"http://127.0.0.1:{service_port}"
        with pinned_server(["-m", "app", "serve"], f"{service}/api/common/health", service_env) as server:
            login = _call(f"{service}/api/auth/login", {"email": EMAIL, "password": PASSWORD})
            token = login["access_token"]
            auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            payment_id = _call(f"{service}{CREATE}", PAYMENT, auth)["id"]
            floor_env = {
                **os.environ, "BENCH_DB_URI": database_uri, "BENCH_SESSION_ID": latest_session(database_uri),
                "BENCH_PAYMENTS_URL": sim_url, "BENCH_PAYMENTS_API_KEY": API_KEY,
            }  # fmt: skip
            floor_command = ["-m", "uvicorn", "bench.billing_app:app", "--port", str(floor_port), *uvicorn_flags]
            floor = f"http://127.0.0.1:{floor_port}"
            with pinned_server(floor_command, f"{floor}/nothing-here", floor_env, ready_status=404) as floor_server:
                sides = {"minimal": (floor, floor_server), "full stack": (service, server)}
                read_path = f"{CREATE}/{payment_id}"
                reads: dict[str, list[Run]] = {name: [] for name in sides}
                creates: dict[str, list[Run]] = {name: [] for name in sides}
                read_script = bearer_script(token, directory / "read.lua")
                for base, _ in sides.values():  # warm-up
                    wrk(base + read_path, 2, arguments.connections, read_script)
                    wrk(base + CREATE, 2, arguments.connections, _create_script(token, directory))
                for _ in range(arguments.runs):
                    for name, (base, process) in sides.items():
                        reads[name].append(wrk(base + read_path, arguments.seconds, arguments.connections,
                                               read_script, server=process))  # fmt: skip
                    for name, (base, process) in sides.items():
                        creates[name].append(wrk(base + CREATE, arguments.seconds, arguments.connections,
                                                 _create_script(token, directory), server=process))  # fmt: skip
            capacity = statistics.median(run.requests_per_second for run in creates["full stack"])
            latencies, failed = _paced(service + CREATE, token, capacity * 0.8, arguments.seconds * 2)
    print(f"same run; servers on core 0; simulator, PostgreSQL and load on core 1; {arguments.connections} "
          f"connections, median of {arguments.runs} x {arguments.seconds}s")  # fmt: skip
    _report("(a) GET /api/billing/payments/{id}", reads, 0.75)
    _report("(b) POST /api/billing/payments (a new key each)", creates, 0.60)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"(b) paced at 80% of the full stack's capacity ({capacity * 0.8:,.0f} req/s, {len(latencies)} requests, "
          f"{failed} not 2xx): p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99/p50 {p99 / p50:.1f} (target <= 10)")  # fmt: skip


def _report(title: str, results: dict[str, list[Run]], target: float) -> None:
    medians = {name: statistics.median(run.requests_per_second for run in ran) for name, ran in results.items()}
    cpu = {name: statistics.median(run.cpu_us_per_request or 0 for run in ran) for name, ran in results.items()}
    print(title)
    print(f"  {'':<12}{'req/s':>10}{'CPU us/req':>12}{'p99 ms':>10}   runs (req/s)   non-2xx")
    for name, ran in results.items():
        p99 = statistics.median(run.p99_ms for run in ran)
        each = ", ".join(f"{run.requests_per_second:,.0f}" for run in ran)
        print(f"  {name:<12}{medians[name]:>10,.0f}{cpu[name]:>12,.0f}{p99:>10.2f}   {each}   "
              f"{sum(run.non_2xx for run in ran)}")  # fmt: skip
    ratio = medians["full stack"] / medians["minimal"]
    print(f"  ratio full stack / minimal: {ratio:.2f} req/s, {cpu['minimal'] / cpu['full stack']:.2f} by CPU per "
          f"request (target >= {target:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()

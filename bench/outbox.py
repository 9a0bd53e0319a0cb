"""`make bench-outbox`: how many outbox messages one worker (`python -m app worker`, on core 0) delivers a second to
the notify simulator (its rate limit lifted, on core 1), vs the floor: the same POSTs, each with its Idempotency-Key,
sent by a bare aiohttp client at the dispatcher's concurrency (on core 0, no database).

The messages are written in one transaction while the worker idles; the clock runs from that commit until the last
is marked delivered. Beside messages/s, the CPU time the sender spent per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from bench.wrk import LOAD_CORE, ROOT, SERVER_CORE, free_port, pinned_server

API_KEY = "sk_test_proving_ground"
CONCURRENCY = 4  # OUTBOX_CONCURRENCY's default


@dataclass(frozen=True)
class Run:
    messages_per_second: float
    cpu_us_per_message: float


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="measurements of each kind, taken in turns")
    parser.add_argument("--messages", type=int, default=3000, help="messages a measurement sends")
    return parser.parse_args()


def _message(run: int, number: int) -> dict[str, str]:
    return {"channel": "email", "to": f"user{number}@example.org", "subject": "Hello", "body": f"run {run} #{number}"}


async def _floor(notify: str, run: int, count: int) -> Run:
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    slots = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {API_KEY}"}) as http:

        async def send(number: int) -> None:
            async with slots, http.post(f"{notify}/v1/messages", json=_message(run, number),
                                        headers={"Idempotency-Key": f"floor-{run}-{number}"}) as answer:  # fmt: skip
                answer.raise_for_status()
                await answer.read()

        cpu, started = time.process_time(), time.monotonic()
        await asyncio.gather(*(send(number) for number in range(count)))
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    os.sched_setaffinity(0, {int(SERVER_CORE), int(LOAD_CORE)})
    return Run(count / seconds, cpu / count * 1e6)


async def _worker(database_uri: str, worker: psutil.Process, run: int, count: int) -> Run:
    connection = await asyncpg.connect(database_uri)
    try:
        rows = [("bench", f"bench:{number}", json.dumps(_message(run, number)), f"bench-{run}-{number}")
                for number in range(count)]  # fmt: skip
        async with connection.transaction():
            await connection.executemany(
                "INSERT INTO outbox (kind, about, payload, idempotency_key) VALUES ($1, $2, $3::jsonb, $4)", rows
            )
            cpu = sum(worker.cpu_times()[:2])
            started = time.monotonic()
        while await connection.fetchval("SELECT count(*) FROM outbox WHERE status <> 'delivered'"):  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # the state is in PostgreSQL: polled
        seconds, cpu = time.monotonic() - started, sum(worker.cpu_times()[:2]) - cpu
        undelivered = await connection.fetchval("SELECT count(*) FROM outbox WHERE status <> 'delivered'")
        assert undelivered == 0  # noqa: S101
        await connection.execute("DELETE FROM outbox")
    finally:
        await connection.close()
    return Run(count / seconds, cpu / count * 1e6)


def main() -> None:
    arguments = _arguments()
    port = free_port()
    notify = f"http://127.0.0.1:{port}"
    with embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(upgrade(database_uri))
        config = Path(tmp) / "notify.json"
        config.write_text(json.dumps({"rules": [], "journal_size": 1000}))
        simulator = ["-m", "simulators", "notify", "--port", str(port), "--config", str(config)]
        worker_env = {
            **os.environ, "PROFILE": "test", "DB_URI": database_uri, "NOTIFY_URL": notify, "NOTIFY_API_KEY": API_KEY,
            "LOG_LEVEL": "WARNING", "DATA_DIR": str(ROOT / ".data"), "METRICS_PORT": str(free_port()),
        }  # fmt: skip
        metrics = f"http://127.0.0.1:{worker_env['METRICS_PORT']}/metrics"
        with (
            pinned_server(simulator, f"{notify}/__sim/clock", core=LOAD_CORE),
            pinned_server(["-m", "app", "worker"], metrics, worker_env) as worker,
        ):
            results: dict[str, list[Run]] = {"bare aiohttp": [], "worker": []}
            asyncio.run(_floor(notify, -1, 200))  # warm-up
            for run in range(arguments.runs):
                results["bare aiohttp"].append(asyncio.run(_floor(notify, run, arguments.messages)))
                results["worker"].append(
                    asyncio.run(_worker(database_uri, psutil.Process(worker.pid), run, arguments.messages))
                )
    _report(results, arguments)


def _report(results: dict[str, list[Run]], arguments: argparse.Namespace) -> None:
    print(f"make bench-outbox: {arguments.messages} messages, concurrency {CONCURRENCY}, median of {arguments.runs}; "
          f"sender on core {SERVER_CORE}, notify simulator on core {LOAD_CORE}")  # fmt: skip
    print(f"{'':<14}{'messages/s':>12}{'CPU µs/message':>16}   runs (messages/s)")
    medians = {}
    for name, ran in results.items():
        rate = statistics.median(run.messages_per_second for run in ran)
        cpu = statistics.median(run.cpu_us_per_message for run in ran)
        medians[name] = (rate, cpu)
        print(f"{name:<14}{rate:>12,.0f}{cpu:>16,.0f}   {', '.join(f'{run.messages_per_second:,.0f}' for run in ran)}")
    (floor_rate, floor_cpu), (rate, cpu) = medians["bare aiohttp"], medians["worker"]
    print(f"ratio worker / bare aiohttp: messages/s {rate / floor_rate:.2f}, CPU per message {floor_cpu / cpu:.2f}")
    print(f"command: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()

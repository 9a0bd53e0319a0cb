"""`python -m app worker` as a deployment runs it: several replicas on one database, each tick of a job run once."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url

from app.database import Database
from app.src.database.outbox import Message, OutboxRepository
from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.support.catalog import catalog_simulator
from tests.support.postgres import truncate_all
from tests.support.processes import ServiceProcess, clean_environment, free_port
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.integration


async def finished_runs(database_uri: str, job: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        runs: list[asyncpg.Record] = await connection.fetch(
            "SELECT scheduled_for, worker, outcome FROM job_runs WHERE job = $1 AND finished_at IS NOT NULL "
            "ORDER BY scheduled_for",
            job,
        )
        return runs
    finally:
        await connection.close()


async def until_runs(database_uri: str, job: str, count: int, within: float = 20) -> list[asyncpg.Record]:
    """Until `count` runs of `job` have finished (that state is in the database: polled)."""
    async with asyncio.timeout(within):
        while len(runs := await finished_runs(database_uri, job)) < count:  # noqa: ASYNC110 - state in PostgreSQL
            await asyncio.sleep(0.2)
    return runs


@pytest.mark.requirement("NFR-3")
async def test_two_workers_run_each_tick_of_a_job_once_and_stop_cleanly(database_uri: str, tmp_path: Path) -> None:
    await truncate_all(database_uri)
    with catalog_simulator() as catalog_url:
        environment = clean_environment(
            PROFILE="test", DB_URI=database_uri, CLEANUP_EVERY_SECONDS="1",
            CATALOG_URL=catalog_url, CATALOG_API_KEY=API_KEY, CATALOG_SYNC_SECONDS="1", CATALOG_PAGE_SIZE="20",
        )  # fmt: skip
        ready = "worker started"
        async with (
            ServiceProcess(["worker"], environment, cwd=tmp_path, ready_line=ready) as first,
            ServiceProcess(["worker"], environment, cwd=tmp_path, ready_line=ready) as second,
        ):
            await until_runs(database_uri, "catalog_sync", 4)
            runs = await until_runs(database_uri, "cleanup", 5)
            assert await first.terminate() == 0
            assert await second.terminate() == 0
        async with SimulatorClient(catalog_url) as sim:
            first_pages = [entry for entry in await sim.journal(path="/v1/products") if "cursor" not in entry["query"]]
    ticks = [run["scheduled_for"] for run in runs]
    assert len(set(ticks)) == len(ticks)  # one run per tick
    assert all(later - earlier == dt.timedelta(seconds=1) for earlier, later in itertools.pairwise(ticks)), ticks
    assert {run["outcome"] for run in runs} == {"succeeded"}
    assert {run["worker"].split(":")[1] for run in runs} <= {str(first.pid), str(second.pid)}
    syncs = await finished_runs(database_uri, "catalog_sync")
    assert len({run["scheduled_for"] for run in syncs}) == len(syncs)
    assert len(first_pages) == len(syncs)  # each sync read the feed once: no tick ran twice, none half-counted
    listing = await command_output(["jobs"], environment, tmp_path)
    [cleanup] = [line for line in listing.splitlines() if line.startswith("cleanup")]
    assert "1 s" in cleanup
    assert "succeeded" in cleanup
    [catalog_sync] = [line for line in listing.splitlines() if line.startswith("catalog_sync")]
    assert "succeeded" in catalog_sync
    await truncate_all(database_uri)


async def command_output(arguments: list[str], environment: dict[str, str], cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *arguments, env=environment, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode()
    return output.decode()


@pytest.mark.requirement("NFR-6")
async def test_a_worker_exports_its_job_runs_and_the_outbox_on_its_metrics_port(
    database_uri: str, tmp_path: Path
) -> None:
    await truncate_all(database_uri)
    await enqueue_mail(database_uri, 3)
    port = free_port()
    started = dt.datetime.now(dt.UTC).timestamp()
    with BackgroundSimulator(build("notify", {"seed": 3, "rules": []})) as notify:
        environment = clean_environment(
            PROFILE="test", DB_URI=database_uri, CLEANUP_EVERY_SECONDS="1", METRICS_PORT=str(port),
            NOTIFY_URL=notify.url, NOTIFY_API_KEY=API_KEY,
        )  # fmt: skip
        async with ServiceProcess(["worker"], environment, cwd=tmp_path, ready_line="worker started") as worker:
            before = len(await until_runs(database_uri, "cleanup", 2))
            samples = await until_scraped(port, all_sent)
            after = len(await finished_runs(database_uri, "cleanup"))
            assert await worker.terminate() == 0
    succeeded = samples[("job_runs_total", (("job", "cleanup"), ("outcome", "succeeded")))]
    assert before <= succeeded <= after
    assert samples[("job_last_success_timestamp_seconds", (("job", "cleanup"),))] >= started
    assert samples[("job_interval_seconds", (("job", "cleanup"),))] == 1
    assert samples[("job_duration_seconds_count", (("job", "cleanup"),))] == succeeded
    assert samples[("outbox_dead_lettered", ())] == 0
    await truncate_all(database_uri)


def all_sent(samples: Samples) -> bool:
    delivered = samples.get(("outbox_sent_total", (("result", "delivered"),)))
    settled = samples.get(("outbox_pending", ())) == samples.get(("outbox_in_flight", ())) == 0
    return delivered == 3 and settled


async def enqueue_mail(database_uri: str, count: int) -> None:
    database = Database(database_uri)
    try:
        async with database.unit_of_work() as uow:
            for number in range(count):
                payload = {"channel": "email", "to": f"u{number}@example.org", "subject": "Hi", "body": "Hello"}
                await uow.repository(OutboxRepository).add(Message("test", f"user:{number}", payload, f"m-{number}"))
            await uow.commit()
    finally:
        await database.dispose()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def until_scraped(port: int, wanted: Callable[[Samples], bool], within: float = 20) -> Samples:
    """Scrape the worker's /metrics until `wanted` holds (the outbox's gauges lag by up to a second: polled)."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(within):
        while True:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                text = await response.text()
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
            if wanted(samples):
                return samples
            await asyncio.sleep(0.2)

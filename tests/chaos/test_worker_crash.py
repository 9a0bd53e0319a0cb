"""NFR-3: a worker SIGKILLed in the middle of a catalog sync. Its advisory lock goes with its connection at once,
the next tick runs on the other worker, and the mirror never shows half of a sync."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import make_url

from app.database import Database
from app.src.api.catalog.sync import CatalogSync, SyncPolicy
from app.src.database.job_runs import lock_key
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from simulators.client import SimulatorClient
from tests.support.catalog import catalog_simulator
from tests.support.postgres import truncate_all
from tests.support.processes import ServiceProcess, clean_environment
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.chaos


@pytest.fixture
async def connection(database_uri: str) -> AsyncIterator[asyncpg.Connection]:
    await truncate_all(database_uri)
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    yield connection
    await connection.close()
    await truncate_all(database_uri)


async def synced_once(database_uri: str, url: str) -> None:
    """The mirror as an earlier sync left it."""
    database = Database(database_uri)
    async with ProviderClient("catalog", url, ProviderPolicy(), ProviderMetrics(), api_key=API_KEY) as client:
        await CatalogSync(database, client, SyncPolicy(page_size=5, versions_kept=3)).run()
    await database.dispose()


async def mirror(connection: asyncpg.Connection) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    rows = await connection.fetch("SELECT * FROM catalog_items ORDER BY id, valid_from")
    pages = await connection.fetch("SELECT * FROM catalog_pages ORDER BY position")
    state = await connection.fetchrow("SELECT version, oldest_kept, synced_at FROM catalog_state")
    return [tuple(row) for row in rows], (tuple(state), [tuple(page) for page in pages])


async def until(condition: Any, within: float = 30, every: float = 0.05) -> Any:
    """Until `condition()` (a coroutine function; the state is in PostgreSQL or the simulator: polled) is truthy."""
    async with asyncio.timeout(within):
        while not (result := await condition()):  # noqa: ASYNC110 - state held elsewhere
            await asyncio.sleep(every)
    return result


@pytest.mark.requirement("NFR-3")
async def test_a_worker_killed_mid_sync_loses_its_lock_and_the_next_tick_runs_whole_on_the_other(
    connection: asyncpg.Connection, database_uri: str, tmp_path: Path
) -> None:
    with catalog_simulator(initial_products=45) as url:
        await synced_once(database_uri, url)
        before = await mirror(connection)
        async with SimulatorClient(url) as sim:
            await sim.put_product("prod_new", name="Zinc Bowl", price=1234)
            await sim.remove_product("prod_000007")
            await sim.clear_journal()
            slow = await sim.add_fault(
                route="/v1/products", action={"kind": "latency", "distribution": {"type": "fixed", "ms": 1000}}
            )  # nine pages, nine seconds: no sync can end before the test has killed the first
            environment = clean_environment(
                PROFILE="test", DB_URI=database_uri, CATALOG_URL=url, CATALOG_API_KEY=API_KEY,
                CATALOG_SYNC_SECONDS="2", CATALOG_PAGE_SIZE="5", CLEANUP_EVERY_SECONDS="3600",
            )  # fmt: skip
            async with (
                ServiceProcess(["worker"], environment, cwd=tmp_path, ready_line="worker started") as first,
                ServiceProcess(["worker"], environment, cwd=tmp_path, ready_line="worker started") as second,
            ):
                running = await until(lambda: connection.fetchrow(
                    "SELECT id, scheduled_for, worker FROM job_runs WHERE job = 'catalog_sync' AND finished_at IS NULL"
                ))  # fmt: skip
                await until(lambda: _pages_asked(sim, at_least=3))  # part way through the feed's nine pages
                victim, survivor = (first, second) if running["worker"].endswith(f":{first.pid}") else (second, first)
                [holder] = await _lock_holders(connection)
                os.kill(victim.pid, signal.SIGKILL)

                # The killed worker's session, and its lock, end at once (the other worker may take the lock next).
                await until(lambda: _released_by(connection, holder), within=5)
                assert await mirror(connection) == before  # nothing of the killed sync is there
                await sim.remove_fault(slow["id"])
                finished = await until(lambda: connection.fetchrow(
                    "SELECT scheduled_for, worker FROM job_runs WHERE job = 'catalog_sync' "
                    "AND outcome = 'succeeded' AND scheduled_for > $1", running["scheduled_for"],
                ))  # fmt: skip
                assert finished["worker"].endswith(f":{survivor.pid}")
                assert await survivor.terminate() == 0

        killed = await connection.fetchrow("SELECT outcome, error_class FROM job_runs WHERE id = $1", running["id"])
        assert tuple(killed) == ("abandoned", "WorkerLost")
        current = {row["id"]: row["price"] for row in await connection.fetch(
            "SELECT id, price FROM catalog_items WHERE valid_to IS NULL")}  # fmt: skip
        assert current["prod_new"] == 1234
        assert "prod_000007" not in current
        assert len(current) == 45
        assert await connection.fetchval("SELECT version FROM catalog_state") == 2


async def _pages_asked(sim: SimulatorClient, at_least: int) -> bool:
    return await sim.journal_count(path="/v1/products") >= at_least


async def _lock_holders(connection: asyncpg.Connection) -> list[int]:
    """The backends holding the job's lock in this test's database (a bigint advisory key shows as its two 32-bit
    halves; other databases on the server, another test's, hold locks of the same key)."""
    key = lock_key("catalog_sync") & 0xFFFFFFFFFFFFFFFF
    rows = await connection.fetch(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::text::bigint = $1 AND objid::text::bigint = $2",
        key >> 32, key & 0xFFFFFFFF,
    )  # fmt: skip
    return [row["pid"] for row in rows]


async def _released_by(connection: asyncpg.Connection, backend: int) -> bool:
    return backend not in await _lock_holders(connection)


@pytest.mark.requirement("NFR-3")
@pytest.mark.parametrize(
    ("page_ms", "shutdown_timeout", "outcome", "version"),
    [(200, 30, "succeeded", 2), (1000, 1, "cancelled", 1)],
    ids=["the run ends within the grace", "the run outlasts the grace"],
)
async def test_sigterm_lets_a_running_job_end_within_the_grace_then_cancels_it_and_exits_0(
    connection: asyncpg.Connection, database_uri: str, tmp_path: Path,
    page_ms: int, shutdown_timeout: int, outcome: str, version: int,
) -> None:  # fmt: skip
    with catalog_simulator(initial_products=45) as url:
        await synced_once(database_uri, url)
        async with SimulatorClient(url) as sim:
            await sim.put_product("prod_new", name="Zinc Bowl", price=1234)
            await sim.clear_journal()
            await sim.add_fault(
                route="/v1/products", action={"kind": "latency", "distribution": {"type": "fixed", "ms": page_ms}}
            )
            environment = clean_environment(
                PROFILE="test", DB_URI=database_uri, CATALOG_URL=url, CATALOG_API_KEY=API_KEY,
                CATALOG_SYNC_SECONDS="60", CATALOG_PAGE_SIZE="5", SHUTDOWN_TIMEOUT=str(shutdown_timeout),
            )  # fmt: skip
            async with ServiceProcess(["worker"], environment, cwd=tmp_path, ready_line="worker started") as worker:
                await until(lambda: _pages_asked(sim, at_least=2))  # the sync of the tick under way, part done
                assert await worker.terminate(grace=shutdown_timeout + 15) == 0
    run = await connection.fetchrow("SELECT outcome FROM job_runs WHERE job = 'catalog_sync'")
    assert run["outcome"] == outcome
    assert await connection.fetchval("SELECT version FROM catalog_state") == version

"""The runs of scheduled jobs (migration 0004), on the dedicated connection that holds the job's advisory lock."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import asyncpg
import sqlalchemy as sa

from app.src.database.metadata import metadata

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("error_class", sa.Text),
    sa.Column("duration_seconds", sa.Float),
)


def lock_key(job: str) -> int:
    """The job's advisory lock: a stable 64-bit number from its name."""
    return int.from_bytes(hashlib.sha256(f"job:{job}".encode()).digest()[:8], "big", signed=True)


async def try_lock(connection: asyncpg.Connection, job: str) -> bool:
    """Hold the job's lock for as long as this connection lives (or until unlocked); False if another holds it."""
    locked: bool = await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(job))
    return locked


async def claimed(connection: asyncpg.Connection, job: str, scheduled_for: dt.datetime) -> bool:
    found: bool = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM job_runs WHERE job = $1 AND scheduled_for = $2)", job, scheduled_for
    )
    return found


async def claim(connection: asyncpg.Connection, job: str, scheduled_for: dt.datetime, worker: str) -> int | None:
    """The id of a new run of this tick; None when the tick was claimed already (by any worker, however late)."""
    run_id: int | None = await connection.fetchval(
        "INSERT INTO job_runs (job, scheduled_for, worker) VALUES ($1, $2, $3) "
        "ON CONFLICT (job, scheduled_for) DO NOTHING RETURNING id",
        job,
        scheduled_for,
        worker,
    )
    return run_id


async def abandon_unfinished(connection: asyncpg.Connection, job: str) -> None:
    """Runs of `job` claimed and never finished: called with the job's lock held, so their workers died."""
    await connection.execute(
        "UPDATE job_runs SET finished_at = now(), outcome = 'abandoned', error_class = 'WorkerLost' "
        "WHERE job = $1 AND finished_at IS NULL",
        job,
    )


async def finish(
    connection: asyncpg.Connection, run_id: int, outcome: str, error_class: str | None, seconds: float
) -> None:
    await connection.execute(
        "UPDATE job_runs SET finished_at = now(), outcome = $2, error_class = $3, duration_seconds = $4 WHERE id = $1",
        run_id,
        outcome,
        error_class,
        seconds,
    )


@dataclass(frozen=True, slots=True)
class LastRun:
    scheduled_for: dt.datetime
    worker: str
    outcome: str
    error_class: str | None
    duration_seconds: float | None


async def last_runs(connection: asyncpg.Connection) -> dict[str, LastRun]:
    rows = await connection.fetch(
        "SELECT DISTINCT ON (job) job, scheduled_for, worker, outcome, error_class, duration_seconds "
        "FROM job_runs ORDER BY job, scheduled_for DESC"
    )
    return {row["job"]: LastRun(*tuple(row)[1:]) for row in rows}

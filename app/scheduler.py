"""Scheduled jobs: APScheduler 3 fires them; PostgreSQL decides which worker runs each tick.

Every job runs on an interval anchored at EPOCH, so every worker computes the same fire times. A run first takes
the job's advisory lock on a connection of its own: runs of a job never overlap, a worker that dies loses the lock
with its connection, and a tick whose previous run overran waits for it within its misfire grace. It then claims
its (job, fire time) with a unique row in `job_runs`, so a tick runs once however late another worker fires it,
runs under a timeout, and records how it ended. A run claimed and never finished (its worker died: the lock came
free) is recorded as abandoned by the next run. When a worker starts, the tick under way runs at once unless a
worker has run it already. APScheduler adds `max_instances=1` (no overlap within a worker), `coalesce` (missed
ticks run once) and a misfire grace time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.bootstrap import Services, open_services
from app.runtime.metrics_endpoint import metrics_server
from app.settings import Settings
from app.src.api.messaging.dispatcher import Dispatcher, OutboxMetrics
from app.src.api.notify_provider.email import NotifyEmailSender
from app.src.database import job_runs
from app.src.utils.logs import module_logger

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LOCK_POLL_SECONDS = 0.1  # while a tick waits for the run before it to end
_log = module_logger("scheduler")

JobFunction = Callable[[Services], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: dt.timedelta
    run: JobFunction
    timeout: float  # seconds a run may take; then it is cancelled (its transaction rolls back)
    description: str

    def trigger(self) -> IntervalTrigger:
        return IntervalTrigger(seconds=self.every.total_seconds(), start_date=EPOCH, timezone=dt.UTC)

    def tick(self, now: dt.datetime) -> dt.datetime:
        """The fire time a run at `now` belongs to: the last one at or before it."""
        ticks = (now - EPOCH) // self.every
        return EPOCH + ticks * self.every

    def next_fire_time(self, now: dt.datetime) -> dt.datetime:
        return self.tick(now) + self.every

    @property
    def misfire_grace(self) -> dt.timedelta:
        """How late a tick may still start: half the interval, at least a second."""
        return max(dt.timedelta(seconds=1), self.every / 2)


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter("job_runs", "Job runs by outcome", ["job", "outcome"], registry=registry)
        self.duration = Histogram(
            "job_duration_seconds", "How long job runs took", ["job"], registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
        )  # fmt: skip
        self.missed = Counter(
            "job_ticks_missed",
            "Ticks not run: the run before held the job past their grace",
            ["job"],
            registry=registry,
        )
        self.last_success = Gauge(
            "job_last_success_timestamp_seconds", "When each job last succeeded (Unix time)", ["job"],
            registry=registry,
        )  # fmt: skip
        self.interval = Gauge(
            "job_interval_seconds", "How often each job is due: alerts compare its last success with this", ["job"],
            registry=registry,
        )  # fmt: skip


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    def __init__(self, services: Services, jobs: Sequence[Job], metrics: JobMetrics, worker: str) -> None:
        self._services = services
        self._jobs = jobs
        self._metrics = metrics
        self._worker = worker
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self) -> None:
        for job in self._jobs:
            self._metrics.interval.labels(job.name).set(job.every.total_seconds())
            self._scheduler.add_job(
                self._fire, job.trigger(), args=[job], id=job.name, name=job.name,
                max_instances=1, coalesce=True, misfire_grace_time=int(job.misfire_grace.total_seconds()),
            )  # fmt: skip
        self._scheduler.start()
        for job in self._jobs:  # the tick under way when the worker starts, unless a worker ran it already
            self._running.add(asyncio.get_running_loop().create_task(self._fire(job), name=f"{job.name}:catch-up"))

    async def stop(self, grace: float) -> None:
        """No new runs; the running ones get `grace` seconds to end, then are cancelled."""
        self._stopping = True
        self._scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # a tick handed to the loop just before the shutdown starts now, and sees _stopping
        if self._running:
            _, late = await asyncio.wait(self._running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _fire(self, job: Job) -> None:
        if self._stopping:  # fired as the worker stops: the tick is left to the other workers, or the next start
            return
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - APScheduler runs coroutine jobs as tasks
        self._running.add(task)
        try:
            await self.run_once(job, dt.datetime.now(dt.UTC))
        finally:
            self._running.discard(task)

    async def run_once(self, job: Job, now: dt.datetime) -> str | None:
        """Run the tick of `now` unless another worker runs this job or has run this tick; how it ended, or None
        when this worker did not run it."""
        tick = job.tick(now)
        return await self._run(job, tick, tick + job.misfire_grace)

    async def run_now(self, job: Job) -> str | None:
        """A run out of schedule (`python -m app jobs run NAME`), recorded under the time it was asked for; it waits
        for a run under way to end (up to the job's timeout). How it ended, or None if it could not start."""
        now = dt.datetime.now(dt.UTC)
        return await self._run(job, now, now + dt.timedelta(seconds=job.timeout))

    async def _run(self, job: Job, scheduled_for: dt.datetime, lock_until: dt.datetime) -> str | None:
        async with self._services.database.dedicated_connection() as connection:
            if not await self._lock(connection, job, scheduled_for, lock_until):
                return None
            await job_runs.abandon_unfinished(connection, job.name)  # with the lock free, their workers are gone
            run_id = await job_runs.claim(connection, job.name, scheduled_for, self._worker)
            if run_id is None:
                return None
            outcome, error_class, started = "succeeded", None, time.monotonic()
            try:
                async with asyncio.timeout(job.timeout):
                    await job.run(self._services)
            except TimeoutError:
                outcome, error_class = "timed_out", "TimeoutError"
            except asyncio.CancelledError:  # the worker stops and this run outlasted its grace
                await job_runs.finish(connection, run_id, "cancelled", "CancelledError", time.monotonic() - started)
                raise
            except Exception as error:  # noqa: BLE001 - any failure of a job is recorded, logged and counted
                outcome, error_class = "failed", type(error).__name__
                _log.error("job failed", job=job.name, scheduled_for=scheduled_for.isoformat(), exc_info=error)
            seconds = time.monotonic() - started
            await job_runs.finish(connection, run_id, outcome, error_class, seconds)
        self._record(job, outcome, seconds)
        return outcome

    async def _lock(self, connection: asyncpg.Connection, job: Job, tick: dt.datetime, deadline: dt.datetime) -> bool:
        """The job's lock, for this tick: False when the tick is claimed already, or the lock stayed taken (a
        run that overran) until `deadline`; that tick is then missed, counted and logged."""
        while not await job_runs.claimed(connection, job.name, tick):
            if await job_runs.try_lock(connection, job.name):
                return True
            if dt.datetime.now(dt.UTC) >= deadline:
                self._metrics.missed.labels(job.name).inc()
                _log.warning("tick missed: the previous run still holds the job", job=job.name, tick=tick.isoformat())
                return False
            await asyncio.sleep(LOCK_POLL_SECONDS)
        return False

    def _record(self, job: Job, outcome: str, seconds: float) -> None:
        self._metrics.runs.labels(job.name, outcome).inc()
        self._metrics.duration.labels(job.name).observe(seconds)
        if outcome == "succeeded":
            self._metrics.last_success.labels(job.name).set(time.time())


async def _cleanup(services: Services) -> None:
    await services.cleanup.run()


async def _catalog_sync(services: Services) -> None:
    if services.catalog_sync is None:
        raise RuntimeError("catalog_sync is registered only when CATALOG_URL is set")
    await services.catalog_sync.run()


async def _payments_reconcile(services: Services) -> None:
    await services.billing.reconcile()


def registered_jobs(settings: Settings) -> list[Job]:
    """Every job the worker runs, in the order `python -m app jobs` lists them."""
    jobs = [
        Job(
            "cleanup",
            dt.timedelta(seconds=settings.cleanup_every_seconds),
            _cleanup,
            timeout=300,
            description="removes ended sessions, old login failures, spent challenges and old job runs",
        ),
    ]
    if settings.payments_url is not None:
        every = dt.timedelta(seconds=settings.payments_reconcile_seconds)
        description = "settles payments whose outcome no request learnt (replay with our key, then search)"
        jobs.insert(0, Job("payments_reconcile", every, _payments_reconcile, timeout=max(60, 2 * every.total_seconds()),
                           description=description))  # fmt: skip
    if settings.catalog_url is not None:
        every = dt.timedelta(seconds=settings.catalog_sync_seconds)
        description = "mirrors the catalog provider's products (one transaction a sync)"
        jobs.insert(0, Job("catalog_sync", every, _catalog_sync, timeout=max(30, 2 * every.total_seconds()),
                           description=description))  # fmt: skip
    return jobs


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """`python -m app worker`: the composition root, the jobs (and /metrics on METRICS_PORT), until `stop`; then
    running jobs get SHUTDOWN_TIMEOUT seconds to end."""
    registry = CollectorRegistry(auto_describe=True)
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(open_services(settings, registry))
        if settings.metrics_port is not None:
            token = None if settings.metrics_token is None else settings.metrics_token.get_secret_value()
            host = settings.metrics_host or settings.listen_host
            await stack.enter_async_context(metrics_server(registry, host, settings.metrics_port, token))
        jobs = registered_jobs(settings)
        scheduler = Scheduler(services, jobs, JobMetrics(registry), worker_name())
        scheduler.start()
        dispatching = _dispatch(services, registry, stop)
        _log.info("worker started", jobs=[job.name for job in jobs], dispatching=dispatching is not None)
        await stop.wait()
        _log.info("worker stopping")
        await scheduler.stop(settings.shutdown_timeout)
        if dispatching is not None:
            await asyncio.wait([dispatching], timeout=settings.shutdown_timeout)


def _dispatch(services: Services, registry: CollectorRegistry, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The outbox's dispatcher, sending through the notify provider; none without one (messages then wait)."""
    notify = services.providers.get("notify")
    if notify is None:
        _log.warning("NOTIFY_URL is not set: outbox messages wait until a worker that has one sends them")
        return None
    dispatcher = Dispatcher(services.database, NotifyEmailSender(notify), services.dispatch, OutboxMetrics(registry))
    return asyncio.create_task(dispatcher.run(stop))


async def run_job_now(settings: Settings, name: str) -> str | None:
    """`python -m app jobs run NAME`: the job once, now, through the same lock and records as a tick's run."""
    [job] = [job for job in registered_jobs(settings) if job.name == name]
    async with open_services(settings) as services:
        scheduler = Scheduler(services, [job], JobMetrics(CollectorRegistry()), f"manual:{worker_name()}")
        return await scheduler.run_now(job)


async def job_table(settings: Settings) -> list[str]:
    """`python -m app jobs`: each job's schedule, next fire time and last run, one line each."""
    now = dt.datetime.now(dt.UTC)
    async with open_services(settings) as services, services.database.dedicated_connection() as connection:
        try:
            last = await job_runs.last_runs(connection)
        except asyncpg.UndefinedTableError:
            return ["The database has no job runs yet: apply the migrations (python -m app migrate)."]
    lines = [f"{'job':<14}{'every':>10}  {'next fire time (UTC)':<22}{'last run (UTC)':<22}{'outcome':<12}worker"]
    for job in registered_jobs(settings):
        run = last.get(job.name)
        when = "never" if run is None else f"{run.scheduled_for:%Y-%m-%d %H:%M:%S}"
        outcome = "" if run is None else run.outcome + (f" ({run.error_class})" if run.error_class else "")
        lines.append(
            f"{job.name:<14}{_every(job.every):>10}  {job.next_fire_time(now):%Y-%m-%d %H:%M:%S}   "
            f"{when:<22}{outcome:<12}{'' if run is None else run.worker}"
        )
    return lines


def _every(interval: dt.timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"

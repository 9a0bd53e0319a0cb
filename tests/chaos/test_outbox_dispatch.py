"""NFR-3: the outbox's dispatcher against a notify provider that fails in every way the simulator knows (503s,
resets, answers lost after the message was accepted, 429 storms), then recovers: every message arrives once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from app.database import Database
from app.src.api.messaging.dispatcher import Dispatcher, DispatchPolicy, OutboxMetrics
from app.src.api.notify_provider.email import NotifyEmailSender
from app.src.database.outbox import Message, OutboxRepository, OutboxStats
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.chaos

QUICK = DispatchPolicy(concurrency=8, batch=50, max_attempts=40, backoff_base=0.05, backoff_cap=0.5,
                       lease_seconds=5, idle_seconds=0.05)  # fmt: skip


@pytest.fixture
def notify() -> Iterator[str]:
    """A notify simulator of this test's own, without the default rate limit (the test adds its own storms)."""
    with BackgroundSimulator(build("notify", {"seed": 11, "rules": []})) as running:
        yield running.url


@pytest.fixture
def database(clean_database: Database) -> Database:
    return clean_database


def message(number: int) -> Message:
    payload = {"channel": "email", "to": f"user{number}@example.org", "subject": "Hello", "body": f"message {number}"}
    return Message(kind="test", about=f"user:{number}", payload=payload, idempotency_key=f"test-{number}")


async def enqueue(database: Database, messages: list[Message]) -> None:
    async with database.unit_of_work() as uow:
        for each in messages:
            await uow.repository(OutboxRepository).add(each)
        await uow.commit()


async def stats(database: Database) -> OutboxStats:
    async with database.unit_of_work() as uow:
        return await uow.repository(OutboxRepository).stats()


async def until_settled(database: Database, within: float = 30) -> OutboxStats:
    """Until no message waits (the state is in the outbox table: polled)."""
    async with asyncio.timeout(within):
        while (now := await stats(database)).pending + now.sending:  # noqa: ASYNC110 - the state is in PostgreSQL
            await asyncio.sleep(0.1)
    return now


async def dispatching(database: Database, url: str, stop: asyncio.Event, count: int = 2) -> list[asyncio.Task[None]]:
    """`count` dispatchers at once, as several workers would run them, each with a provider client of its own."""
    tasks = []
    for _ in range(count):
        client = ProviderClient("notify", url, ProviderPolicy(deadline=2, read_timeout=1), ProviderMetrics(),
                                api_key=API_KEY)  # fmt: skip
        await client.start()
        dispatcher = Dispatcher(database, NotifyEmailSender(client), QUICK, OutboxMetrics(CollectorRegistry()))
        tasks.append(asyncio.create_task(_run_then_close(dispatcher, client, stop)))
    return tasks


async def _run_then_close(dispatcher: Dispatcher, client: ProviderClient, stop: asyncio.Event) -> None:
    try:
        await dispatcher.run(stop)
    finally:
        await client.close()


@pytest.mark.requirement("NFR-3")
async def test_through_every_kind_of_failure_each_message_arrives_exactly_once(database: Database, notify: str) -> None:
    await enqueue(database, [message(number) for number in range(200)])
    stop = asyncio.Event()
    async with SimulatorClient(notify) as sim:
        async with (
            sim.fault(route="/v1/messages", action={"kind": "status", "status": 503}, probability=0.3),
            sim.fault(route="/v1/messages", action={"kind": "reset"}, probability=0.1),
            sim.fault(route="/v1/messages", action={"kind": "drop_after_commit"}, probability=0.1),
            sim.fault(route="/v1/messages", action={"kind": "rate_limit", "rate": 30, "burst": 5}),
        ):
            tasks = await dispatching(database, notify, stop)
            await asyncio.sleep(2)  # two seconds of the storm; then the provider recovers
        settled = await until_settled(database)
        stop.set()
        await asyncio.gather(*tasks)
        inbox = await sim.inbox()
        attempts = await sim.journal_count(path="/v1/messages", method="POST")
    assert (settled.pending, settled.sending, settled.dead) == (0, 0, 0)
    assert sorted(entry["to"] for entry in inbox) == sorted(f"user{number}@example.org" for number in range(200))
    assert attempts > 200  # the faults made it try again; the idempotency keys made each arrive once


@pytest.mark.requirement("NFR-3")
async def test_a_message_that_always_fails_is_dead_lettered_after_its_attempts(database: Database, notify: str) -> None:
    await enqueue(database, [message(1)])
    policy = DispatchPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02, idle_seconds=0.02)
    client = ProviderClient("notify", notify, ProviderPolicy(max_attempts=1, deadline=1), ProviderMetrics(),
                            api_key=API_KEY)  # fmt: skip
    registry = CollectorRegistry()
    async with client, SimulatorClient(notify) as sim:
        async with sim.fault(route="/v1/messages", action={"kind": "status", "status": 503}):
            dispatcher = Dispatcher(database, NotifyEmailSender(client), policy, OutboxMetrics(registry))
            stop = asyncio.Event()
            running = asyncio.create_task(dispatcher.run(stop))
            settled = await until_settled(database, within=5)  # three quick attempts: under a second here
            stop.set()
            await running
        assert await sim.journal_count(path="/v1/messages", method="POST") == 3
    assert settled.dead == 1
    async with database.unit_of_work() as uow:
        [(_, kind, attempts, error)] = await uow.repository(OutboxRepository).dead_letters(10)
    assert (kind, attempts) == ("test", 3)
    assert error is not None
    assert "503" in error
    assert registry.get_sample_value("outbox_dead_lettered") == 1

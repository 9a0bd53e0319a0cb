"""Simulators for the suite: at SIM_*_URL when given, else in-process on free ports (one set per xdist worker).
Every test gets its own X-Sim-Scope, so tests sharing a simulator never see each other's faults or data."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from app.settings import PROVIDERS
from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.support.webhook_receiver import WebhookReceiver, start_receiver

API_KEY = "sk_test_proving_ground"
SEED = 7


@pytest.fixture(scope="session")
def simulator_urls() -> Iterator[dict[str, str]]:
    given: dict[str, str | None] = {name: os.environ.get(f"SIM_{name.upper()}_URL") for name in PROVIDERS}
    started = [BackgroundSimulator(build(name, {"seed": SEED})).start() for name, url in given.items() if url is None]
    urls = {name: url for name, url in given.items() if url is not None}
    urls |= {running.simulator.name: running.url for running in started}
    yield urls
    for running in started:
        running.stop()


@pytest.fixture
def scope() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def _client(url: str, scope: str) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(url, scope=scope)
    try:
        yield client
    finally:
        await client.reset()
        await client.close()


@pytest.fixture
async def payments_sim(simulator_urls: dict[str, str], scope: str) -> AsyncIterator[SimulatorClient]:
    async for client in _client(simulator_urls["payments"], scope):
        yield client


@pytest.fixture
async def catalog_sim(simulator_urls: dict[str, str], scope: str) -> AsyncIterator[SimulatorClient]:
    async for client in _client(simulator_urls["catalog"], scope):
        yield client


@pytest.fixture
async def notify_sim(simulator_urls: dict[str, str], scope: str) -> AsyncIterator[SimulatorClient]:
    async for client in _client(simulator_urls["notify"], scope):
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def headers(scope: str) -> dict[str, str]:
    """What a provider call of this test carries: the API key and the test's scope."""
    return {"Authorization": f"Bearer {API_KEY}", "X-Sim-Scope": scope}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    webhook_receiver, runner = await start_receiver()
    yield webhook_receiver
    await runner.cleanup()

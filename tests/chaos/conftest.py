"""Provider clients pointed at the payments simulator, each test in its own X-Sim-Scope."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from simulators.client import SimulatorClient
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.chaos

ClientFactory = Callable[..., AbstractAsyncContextManager[ProviderClient]]


@pytest.fixture
def provider(payments_sim: SimulatorClient) -> ClientFactory:
    """`async with provider(read_timeout=0.2, ...) as client:` a payments client with that policy."""

    @asynccontextmanager
    async def build(**policy: Any) -> AsyncIterator[ProviderClient]:
        client = ProviderClient(
            "payments",
            payments_sim.base_url,
            ProviderPolicy(**policy),
            ProviderMetrics(CollectorRegistry()),
            api_key=API_KEY,
            rng=random.Random(5),
        )
        async with client:
            yield client

    return build

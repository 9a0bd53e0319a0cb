"""A provider's answer is read up to the policy's `max_response_bytes` and no further: a huge body, announced or
streamed without a length, fails the call (not retried, counted against the provider) instead of filling memory."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from app.src.api.common.providers import ProviderResponseTooLargeError
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from simulators.client import SimulatorClient
from tests.chaos.conftest import ClientFactory
from tests.support.processes import free_port

pytestmark = pytest.mark.chaos


@pytest.mark.requirement("NFR-2")
async def test_an_answer_announced_larger_than_the_limit_fails_the_call_without_a_retry(
    provider: ClientFactory, payments_sim: SimulatorClient
) -> None:
    huge = {"kind": "status", "status": 200, "body": {"padding": "x" * 50_000}}
    await payments_sim.add_fault(route="/v1/charges", method="GET", action=huge)
    async with provider(max_response_bytes=10_000) as client:
        with pytest.raises(ProviderResponseTooLargeError) as raised:
            await client.request("GET", "/v1/charges", headers=payments_sim.scope_headers)
    assert raised.value.attempts == 1
    assert await payments_sim.journal_count(method="GET") == 1


@pytest.fixture
async def streaming_provider() -> AsyncIterator[tuple[str, list[int]]]:
    """A provider that streams its answer in 64 KiB chunks with no Content-Length, without end until the
    reader leaves; yields its URL and how many bytes it managed to write."""
    written: list[int] = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"x" * 65_536
        while written[0] < 64 * 1024 * 1024:  # bounded, in case the reader never leaves
            await response.write(chunk)
            written[0] += len(chunk)
        return response

    async def bomb(request: web.Request) -> web.Response:
        """20 MB of zeros in 20 KB of gzip: small on the wire, large once read."""
        body = gzip.compress(bytes(20 * 1024 * 1024))
        return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    application = web.Application()
    application.router.add_get("/v1/stream", endless)
    application.router.add_get("/v1/bomb", bomb)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", written
    await runner.cleanup()


async def test_an_answer_streamed_without_a_length_is_cut_off_at_the_limit(
    streaming_provider: tuple[str, list[int]],
) -> None:
    url, written = streaming_provider
    registry = CollectorRegistry()
    policy = ProviderPolicy(max_response_bytes=200_000, deadline=5)
    async with ProviderClient("catalog", url, policy, ProviderMetrics(registry)) as client:
        with pytest.raises(ProviderResponseTooLargeError):
            await client.request("GET", "/v1/stream")
    assert written[0] < 16 * 1024 * 1024  # the reader left long before the provider's bound
    exposition = generate_latest(registry).decode()
    assert 'provider_calls_total{outcome="too_large",provider="catalog"} 1.0' in exposition


async def test_a_compressed_answer_is_measured_as_it_is_unpacked(streaming_provider: tuple[str, list[int]]) -> None:
    url, _ = streaming_provider
    policy = ProviderPolicy(max_response_bytes=200_000, deadline=5)
    async with ProviderClient("catalog", url, policy, ProviderMetrics(CollectorRegistry())) as client:
        with pytest.raises(ProviderResponseTooLargeError):
            await client.request("GET", "/v1/bomb")

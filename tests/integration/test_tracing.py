"""NFR-6, tracing: with OTEL_EXPORTER_OTLP_ENDPOINT set, a request to a real `python -m app serve` is one trace
across the caller's span, the inbound request, its database statements and its provider call, exported over
OTLP/HTTP to a receiver here; the provider (the payments simulator) receives the trace context and records it in
its journal. Without the variable, nothing goes out: no `traceparent` reaches the provider."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from simulators.client import SimulatorClient
from simulators.server import BackgroundSimulator, build
from tests.support.accounts import PASSWORD, make_account
from tests.support.processes import ServiceProcess, clean_environment, free_port
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.integration

CALLER_TRACE = os.urandom(16).hex()
CALLER_SPAN = os.urandom(8).hex()
SERVER, CLIENT = 2, 3  # OTLP's SpanKind numbers


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, object]


class Receiver:
    """An OTLP/HTTP trace receiver: what the service exports, decoded."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.arrived = asyncio.Event()

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append(Span(
                        service, span.name, span.kind, span.trace_id.hex(), span.span_id.hex(),
                        span.parent_span_id.hex(), attributes,
                    ))  # fmt: skip
        self.arrived.set()
        return web.Response(content_type="application/x-protobuf")

    async def until(self, name: str) -> Span:
        async with asyncio.timeout(30):
            while True:
                for span in self.spans:
                    if span.name == name:
                        return span
                self.arrived.clear()
                await self.arrived.wait()


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    collected = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", collected.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield collected, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def pay_once(base: str, email: str, headers: dict[str, str]) -> None:
    client = {"X-Client-Id": "tracing"}
    async with aiohttp.ClientSession() as http:
        login = {"email": email, "password": PASSWORD}
        async with http.post(f"{base}/api/auth/login", json=login, headers=client) as response:
            token = (await response.json())["access_token"]
        payment = {"amount": 500, "currency": "eur", "customer": "cus_trace", "description": "traced"}
        keyed = client | headers | {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        async with http.post(f"{base}/api/billing/payments", json=payment, headers=keyed) as response:
            assert response.status == 201, await response.text()


async def served_payment(
    database_uri: str, tmp_path: Path, headers: dict[str, str], **settings: str
) -> list[dict[str, Any]]:
    """One payment through a served API whose payments provider is a simulator of its own; the charge requests
    that simulator received."""
    email = f"trace-{uuid.uuid4().hex[:8]}@example.org"
    await asyncio.to_thread(make_account, database_uri, email, tmp_path)
    simulator = BackgroundSimulator(build("payments", {"seed": 5, "rules": []}))
    simulator.__enter__()
    port = free_port()
    environment = clean_environment(
        PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port),
        PAYMENTS_URL=simulator.url, PAYMENTS_API_KEY=API_KEY, **settings,
    )  # fmt: skip
    try:
        async with ServiceProcess(["serve"], environment, cwd=tmp_path) as service:
            await pay_once(f"http://127.0.0.1:{port}", email, headers)
            assert await service.terminate() == 0  # spans still batched are sent as it stops
        async with SimulatorClient(simulator.url) as sim:
            return await sim.journal(path="/v1/charges", method="POST")
    finally:
        simulator.__exit__(None, None, None)


@pytest.mark.requirement("NFR-6")
async def test_a_request_is_one_trace_from_the_caller_through_the_database_to_the_provider(
    database_uri: str, tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    collected, endpoint = receiver
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    charges = await served_payment(
        database_uri, tmp_path, caller, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="100"
    )
    server = await collected.until("POST /api/billing/payments")
    assert (server.kind, server.trace_id, server.parent_id) == (SERVER, CALLER_TRACE, CALLER_SPAN)
    assert server.service == "proving-ground-api"
    assert server.attributes["http.response.status_code"] == 201
    in_trace = [span for span in collected.spans if span.trace_id == CALLER_TRACE]
    provider = next(span for span in in_trace if span.name == "payments POST")
    assert (provider.kind, provider.parent_id, provider.attributes["http.response.status_code"]) == (
        CLIENT, server.span_id, 200,
    )  # fmt: skip
    statements = [span for span in in_trace if span.attributes.get("db.system") == "postgresql"]
    assert statements
    assert {span.parent_id for span in statements} <= {server.span_id}
    assert [entry["headers"].get("traceparent", "")[3:52] for entry in charges] == [
        f"{CALLER_TRACE}-{provider.span_id}"
    ]


@pytest.mark.requirement("NFR-6")
async def test_without_an_endpoint_no_trace_context_reaches_the_provider(database_uri: str, tmp_path: Path) -> None:
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    charges = await served_payment(database_uri, tmp_path, caller)
    assert len(charges) == 1
    assert "traceparent" not in charges[0]["headers"]

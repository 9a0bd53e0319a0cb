"""What a provider call puts on the wire: the URL, the body and its type, the headers that identify the request
(its id, its idempotency key, the API key), the trace context; and the client's own connections, as many as
its bulkhead lets calls in. Against a provider served in this process over real HTTP (tests/support)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from app.src.api.common.providers import ProviderUnavailableError
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from app.src.utils import tracing
from app.src.utils.logs import request_id_var
from tests.support.scripted_provider import PATH, Provider, status

ONCE = ProviderPolicy(max_attempts=1)


def client_of(url: str, policy: ProviderPolicy = ONCE, api_key: str | None = None) -> ProviderClient:
    return ProviderClient("acme", url, policy, ProviderMetrics(CollectorRegistry()), api_key=api_key)


async def test_a_json_body_goes_as_json_and_a_form_as_a_form(provider: Provider) -> None:
    provider.script.extend([status(200)] * 3)
    async with client_of(provider.url) as client:
        await client.request("POST", PATH, json={"amount": 1200, "currency": "eur"})
        await client.request("POST", PATH, form=[("amount", "1200"), ("description", "two words & more")])
        await client.request("GET", PATH)
    json_body, form_body, no_body = provider.requests
    assert (json_body.headers["Content-Type"], json_body.body) == (
        "application/json",
        b'{"amount":1200,"currency":"eur"}',
    )
    assert (form_body.headers["Content-Type"], form_body.body) == (
        "application/x-www-form-urlencoded",
        b"amount=1200&description=two+words+%26+more",
    )
    assert "Content-Type" not in no_body.headers
    assert no_body.body == b""


async def test_the_request_id_and_idempotency_key_go_with_the_call(provider: Provider) -> None:
    provider.script.extend([status(200)] * 3)
    async with client_of(provider.url) as client:
        token = request_id_var.set("req-from-context")
        try:
            await client.request("POST", PATH, idempotency_key="key-1")
            await client.request("POST", PATH, request_id="req-given")
        finally:
            request_id_var.reset(token)
        await client.request("GET", PATH)
    from_context, given, neither = (request.headers for request in provider.requests)
    assert (from_context["X-Request-ID"], from_context["Idempotency-Key"]) == ("req-from-context", "key-1")
    assert given["X-Request-ID"] == "req-given"
    assert "Idempotency-Key" not in given
    assert "X-Request-ID" not in neither


async def test_the_api_key_is_sent_as_a_bearer_token_and_nothing_without_one(provider: Provider) -> None:
    provider.script.extend([status(200)] * 2)
    async with client_of(provider.url, api_key="sk_test_123") as client:
        await client.request("GET", PATH)
    async with client_of(provider.url) as client:
        await client.request("GET", PATH)
    with_key, without = provider.requests
    assert with_key.headers["Authorization"] == "Bearer sk_test_123"
    assert "Authorization" not in without.headers


async def test_a_base_url_with_a_trailing_slash_is_joined_without_a_double_one(provider: Provider) -> None:
    provider.script.append(status(200))
    async with client_of(provider.url + "/") as client:
        await client.request("GET", PATH)
    assert [request.path for request in provider.requests] == [PATH]


async def test_a_client_serves_between_start_and_close_and_again_once_started_again(provider: Provider) -> None:
    provider.script.extend([status(200)] * 2)
    client = client_of(provider.url)
    with pytest.raises(RuntimeError, match=r"^the acme client is not started$"):
        await client.request("GET", PATH)
    async with client:
        assert (await client.request("GET", PATH)).status == 200
    with pytest.raises(RuntimeError, match=r"^the acme client is not started$"):
        await client.request("GET", PATH)
    async with client:
        assert (await client.request("GET", PATH)).status == 200
    assert provider.received == ["GET", "GET"]


async def test_every_call_the_bulkhead_lets_in_has_a_connection_at_once(provider: Provider) -> None:
    """aiohttp's own pool holds 100 connections unless told otherwise: a call over that would wait for one."""
    calls = 110
    everyone_in = asyncio.Event()

    async def when_all_arrived(request: web.Request) -> web.StreamResponse:
        if len(provider.requests) == calls:
            everyone_in.set()
        await everyone_in.wait()
        return web.json_response({})

    provider.script.extend([when_all_arrived] * calls)
    policy = ProviderPolicy(max_attempts=1, bulkhead_limit=120, deadline=5)
    async with client_of(provider.url, policy) as client:
        answers = await asyncio.gather(*(client.request("GET", PATH) for _ in range(calls)))
    assert [answer.status for answer in answers] == [200] * calls


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory: what `start_tracing` does with an OTLP endpoint, without the exporter."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield exported
    provider.shutdown()


@pytest.mark.requirement("NFR-6")
async def test_a_call_is_one_client_span_whose_context_reaches_the_provider(
    provider: Provider, spans: InMemorySpanExporter
) -> None:
    provider.script.extend([status(503), status(201)])
    async with client_of(provider.url, ProviderPolicy(backoff_base=0, backoff_cap=0)) as client:
        await client.request("POST", PATH + "?expand=all", idempotency_key="key-1")
    (span,) = spans.get_finished_spans()
    assert (span.name, span.kind) == ("acme POST", trace.SpanKind.CLIENT)
    assert dict(span.attributes or {}) == {
        "peer.service": "acme",
        "http.request.method": "POST",
        "url.path": PATH,
        "http.response.status_code": 201,
        "attempts": 2,
    }
    sent = [request.headers["traceparent"].split("-")[1:3] for request in provider.requests]
    assert sent == [[f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]] * 2  # every attempt


@pytest.mark.requirement("NFR-2")
async def test_a_connection_the_provider_never_accepts_fails_at_the_connect_timeout_not_the_deadline() -> None:
    with never_accepting() as url:
        policy = ProviderPolicy(max_attempts=1, connect_timeout=0.2, deadline=3)
        async with client_of(url, policy) as client:
            with pytest.raises(ProviderUnavailableError) as refused:
                async with asyncio.timeout(2):
                    await client.request("GET", PATH)
    assert str(refused.value) == "acme: could not connect"


@contextlib.contextmanager
def never_accepting() -> Iterator[str]:
    """A listening socket whose backlog is full: the kernel drops new connections' SYNs, so a connect hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        queued: list[socket.socket] = []
        try:
            for _ in range(8):
                filler = socket.socket()
                queued.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(address)
                except TimeoutError:
                    break
            else:
                raise RuntimeError("the backlog never filled: this kernel accepts past a listen(0) backlog")
            yield f"http://127.0.0.1:{address[1]}"
        finally:
            for filler in queued:
                filler.close()

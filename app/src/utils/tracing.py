"""OpenTelemetry tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.

On, each process exports its spans over OTLP/HTTP in batches: a server span per inbound request (continuing the
caller's `traceparent`), a span per database statement (asyncpg's instrumentation), and a client span per logical
provider call whose `traceparent` goes out with every attempt, so the provider (a simulator records it in its
journal) continues the same trace. The exporter reads the standard OTEL_* variables (headers, timeout, protocol
endpoint paths); OTEL_SERVICE_NAME names the service.

Off, nothing of OpenTelemetry's SDK is imported and the request path asks one global: `tracer()` is None.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from opentelemetry import context, propagate, trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None


def enabled_by(environment: Mapping[str, str]) -> bool:
    return any(environment.get(name) for name in ENDPOINT_VARIABLES)


def start_tracing(service: str, environment: Mapping[str, str] = os.environ) -> bool:
    """Export spans when an OTLP endpoint is configured; True when tracing is on."""
    global _tracer, _provider  # one tracer per process, as OpenTelemetry keeps its own
    if _provider is not None or not enabled_by(environment):
        return _provider is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environment.get("OTEL_SERVICE_NAME") or f"proving-ground-{service}"
    _provider = TracerProvider(resource=Resource.create({"service.name": name}))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    AsyncPGInstrumentor().instrument(tracer_provider=_provider)  # type: ignore[no-untyped-call]
    _tracer = _provider.get_tracer("proving-ground")
    return True


def stop_tracing() -> None:
    """Send the spans still in the batch, then stop (a process's last act)."""
    global _tracer, _provider
    if _provider is not None:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        _provider.shutdown()
    _tracer = _provider = None


def tracer() -> trace.Tracer | None:
    return _tracer


@contextmanager
def server_span(active: trace.Tracer, method: str, headers: Mapping[str, str]) -> Iterator[trace.Span]:
    """The inbound request's span, a child of the caller's `traceparent` when it sent one; current inside."""
    parent = propagate.extract(headers)
    span = active.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    finally:
        context.detach(token)
        span.end()


def finish_server_span(span: trace.Span, method: str, route: str, status: int) -> None:
    span.update_name(f"{method} {route}")
    span.set_attributes({"http.request.method": method, "http.route": route, "http.response.status_code": status})
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)


def provider_span(
    provider: str, method: str, path: str, headers: MutableMapping[str, str]
) -> AbstractContextManager[trace.Span | None]:
    """A client span around one logical provider call, its `traceparent` put into `headers`; nothing when off."""
    if _tracer is None:
        return nullcontext()
    return _provider_span(_tracer, provider, method, path, headers)


@contextmanager
def _provider_span(
    active: trace.Tracer, provider: str, method: str, path: str, headers: MutableMapping[str, str]
) -> Iterator[trace.Span]:
    attributes = {"peer.service": provider, "http.request.method": method, "url.path": path.split("?", 1)[0]}
    with active.start_as_current_span(
        f"{provider} {method}", kind=trace.SpanKind.CLIENT, attributes=attributes
    ) as span:
        propagate.inject(headers)
        yield span

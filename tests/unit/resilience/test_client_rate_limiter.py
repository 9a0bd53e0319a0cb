"""ClientRateLimiter at the ASGI level: which requests it counts, and the headers it adds as ASGI wants them
(lowercase names). tests/chaos/test_inbound_backpressure.py proves the 429s and their values through the app."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from app.src.resilience.inbound import MAX_CLIENT_ID_LENGTH, ClientRateLimiter, InboundMetrics


async def answer_to(limiter: ClientRateLimiter, client_id: bytes) -> dict[bytes, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/api/things", "headers": [(b"x-client-id", client_id)]}
    await limiter(scope, receive, send)  # type: ignore[arg-type]
    start = sent[0]
    assert start["type"] == "http.response.start"
    headers: dict[bytes, bytes] = dict(start["headers"])
    assert all(name == name.lower() for name in headers)
    return headers


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def limiter() -> ClientRateLimiter:
    metrics = InboundMetrics(CollectorRegistry())
    return ClientRateLimiter(app, rate=1, burst=5, max_clients=10, exempt=lambda path: False, metrics=metrics)


async def test_a_client_id_of_the_longest_length_is_counted_and_a_longer_one_is_not() -> None:
    rate_limiter = limiter()
    longest = await answer_to(rate_limiter, b"c" * MAX_CLIENT_ID_LENGTH)
    assert longest[b"ratelimit-policy"] == b'"per-client";q=5;w=5'
    assert longest[b"ratelimit"].startswith(b'"per-client";r=4;')
    too_long = await answer_to(rate_limiter, b"c" * (MAX_CLIENT_ID_LENGTH + 1))
    assert b"ratelimit" not in too_long  # left to the request guard, which refuses it


def test_the_inbound_metrics_are_exported_under_the_names_and_help_operators_read() -> None:
    registry = CollectorRegistry()
    InboundMetrics(registry)
    assert {(family.name, family.type, family.documentation) for family in registry.collect()} == {
        ("http_requests_shed", "counter", "Requests refused with 503 by the concurrency limit"),
        ("http_requests_rate_limited", "counter", "Requests refused with 429 per client"),
        ("http_requests_concurrency_limit", "gauge", "Requests that may hold a concurrency slot at once, now"),
        ("http_requests_in_flight", "gauge", "Requests holding a concurrency slot"),
        ("http_requests_waiting", "gauge", "Requests waiting for a concurrency slot"),
        ("http_requests_address_limited", "counter",
         "Requests refused with 429 per client address (public sign-in routes)"),
    }  # fmt: skip

"""Inbound backpressure as ASGI middleware, ahead of routing: a per-process concurrency limit that sheds load with
503 after a short bounded wait, and per-client token buckets that answer 429 with the IETF RateLimit headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from app.src.resilience.lifo_slots import Lease, LifoSlots, current_lease
from app.src.resilience.token_bucket import BucketStore
from app.src.utils.logs import request_id_var
from app.src.utils.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

CLIENT_ID_HEADER = b"x-client-id"
INBOUND_EXTENSION = "proving_ground.inbound"
EDGE_SLOT = "proving_ground.slot"  # in a request's scope: the slot the HTTP edge took for it (app/runtime/edge.py)
MAX_CLIENT_ID_LENGTH = 64


class InboundMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.shed = Counter("http_requests_shed_total", "Requests refused with 503 by the concurrency limit",
                            registry=registry)  # fmt: skip
        self.rate_limited = Counter("http_requests_rate_limited_total", "Requests refused with 429 per client",
                                    registry=registry)  # fmt: skip
        self.limit = Gauge("http_requests_concurrency_limit", "Requests that may hold a concurrency slot at once, now",
                           registry=registry)  # fmt: skip
        self.in_flight = Gauge("http_requests_in_flight", "Requests holding a concurrency slot", registry=registry)
        self.waiting = Gauge("http_requests_waiting", "Requests waiting for a concurrency slot", registry=registry)
        self.address_limited = Counter("http_requests_address_limited_total",
                                       "Requests refused with 429 per client address (public sign-in routes)",
                                       registry=registry)  # fmt: skip


async def send_problem(
    send: ASGISendCallable, path: str, status: int, slug: str | None, title: str, detail: str, headers: dict[str, str]
) -> None:
    """A whole problem+json answer, written by middleware that answers before the app."""
    body = problem_body(
        status=status,
        title=title,
        detail=detail,
        type_=problem_type(slug) if slug else "about:blank",
        instance=path,
        request_id=request_id_var.get(),
    )
    raw_headers = [(b"content-type", PROBLEM_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers, "trailers": False})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@dataclass(frozen=True)
class Inbound:
    """What the HTTP edge needs of the app's load shedding to admit and refuse early: its slots, its shed counter,
    which paths are never shed, and how long a request may wait for a slot."""

    slots: LifoSlots
    shed: Counter
    exempt: Callable[[str], bool]
    max_wait: float


class LoadShedder:
    """At most `limit` requests in the app at once; the next waits at most `max_wait` seconds (less once a queue
    stands), then gets 503. Waiters are served newest-first; a request waiting on a provider lends its slot
    (app/src/resilience/lifo_slots.py), and a request frees its slot once its answer's last byte is sent."""

    def __init__(
        self,
        app: ASGIFramework,
        *,
        slots: LifoSlots,
        max_wait: float,
        retry_after: int,
        exempt: Callable[[str], bool],
        metrics: InboundMetrics,
    ) -> None:
        self._app = app
        self._max_wait = max_wait
        self._retry_after = {"Retry-After": str(retry_after)}
        self._exempt = exempt
        self._slots = slots
        self._shed = metrics.shed
        metrics.limit.set_function(lambda: self._slots.limit)
        metrics.in_flight.set_function(lambda: self._slots.in_use)
        metrics.waiting.set_function(lambda: self._slots.waiting)

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self._app(scope, receive, send)
            return
        lease = scope.get(EDGE_SLOT)
        if not isinstance(lease, Lease) or not lease.claim():
            if not await self._slots.take(self._max_wait):
                self._shed.inc()
                detail = "The service is at capacity; retry after the time in Retry-After."
                await send_problem(
                    send, scope["path"], 503, "overloaded", "Service Unavailable", detail, self._retry_after
                )
                return
            lease = Lease(self._slots)
        token = current_lease.set(lease)

        async def send_then_free(message: ASGISendEvent) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                lease.end()  # answered: what runs after (teardown, returning connections) needs no slot

        try:
            await self._app(scope, receive, send_then_free)
        finally:
            current_lease.reset(token)
            lease.end()


class ClientRateLimiter:
    """A token bucket per X-Client-Id (the `max_clients` most recent are remembered; a forgotten client starts
    with a full bucket). Every answer carries RateLimit-Policy and RateLimit; past the limit, 429."""

    def __init__(
        self,
        app: ASGIFramework,
        *,
        rate: float,
        burst: int,
        max_clients: int,
        exempt: Callable[[str], bool],
        metrics: InboundMetrics,
    ) -> None:
        self._app = app
        self._exempt = exempt
        self._buckets = BucketStore("per-client", rate, burst, max_clients)
        self._policy = (b"ratelimit-policy", self._buckets.policy.encode())
        self._rate_limited = metrics.rate_limited

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self._app(scope, receive, send)
            return
        client = next((value for name, value in scope["headers"] if name == CLIENT_ID_HEADER), None)
        if client is None or len(client) > MAX_CLIENT_ID_LENGTH:
            await self._app(scope, receive, send)  # no client to count: the request guard answers for it
            return
        now = time.monotonic()
        bucket = self._buckets.bucket(client, now)
        if not bucket.take(now):
            self._rate_limited.inc()
            wait = bucket.seconds_until_next()
            headers = self._buckets.refusal_headers(wait)
            detail = f"This client has used its {self._buckets.burst} requests; retry after {wait} s."
            await send_problem(send, scope["path"], 429, "rate-limited", "Too Many Requests", detail, headers)
            return
        state = (b"ratelimit", self._buckets.state(bucket).encode())

        async def send_with_quota(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], self._policy, state]
            await send(message)

        await self._app(scope, receive, send_with_quota)


__all__ = ["EDGE_SLOT", "ClientRateLimiter", "InboundMetrics", "LoadShedder"]

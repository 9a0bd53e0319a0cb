"""Prometheus metrics, one registry per app so that several apps in one process never share series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .src.resilience.inbound import InboundMetrics
from .src.resilience.metrics import ProviderMetrics

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "http_requests_total", "HTTP requests served", ("method", "route", "status"), registry=registry
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Time from the first byte of the request to the end of the response",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._children[key] = (self._requests.labels(*labels), self._latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpMetrics(self.registry)
        self.inbound = InboundMetrics(self.registry)
        self.providers = ProviderMetrics(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Prometheus: the HTTP request series."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from app.src.utils.histogram import Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics(Collector):
    """Requests by method, route template and status, and their latency: plain numbers per series, bumped once
    per request by the request-context middleware and exported on scrape (see app/src/utils/histogram.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._series: dict[tuple[str, str, int], Histogram] = {}
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        latency = self._series.get(key)
        if latency is None:
            latency = self._series[key] = Histogram(LATENCY_BUCKETS)
        latency.observe(seconds)

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        return self._families(self._series)

    @staticmethod
    def _families(series: dict[tuple[str, str, int], Histogram]) -> list[Metric]:
        labels = ["method", "route", "status"]
        requests = CounterMetricFamily("http_requests", "HTTP requests served", labels=labels)
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from the first byte of the request to the end of the response",
            labels=labels,
        )
        for (method, route, status), histogram in series.items():
            values = [method, route, str(status)]
            requests.add_metric(values, sum(histogram.counts))
            latency.add_metric(values, histogram.cumulative_buckets(), histogram.total)
        return [requests, latency]

"""A latency histogram for hot paths: bucket counts and a sum in plain numbers, for a collector to export on scrape.

prometheus_client's own metrics take a lock and a chain of calls per update; on a single event loop that is
all cost and no safety. Update these from the event loop only (where /metrics is served too).
"""

from __future__ import annotations

from bisect import bisect_left


class Histogram:
    """Counts per bucket (a value lands in the first bucket whose bound is >= it, Prometheus's `le`) and their sum."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1
        self.total += value

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        """(bound, count of values <= bound) from the lowest bound up to +Inf, as HistogramMetricFamily takes them."""
        running = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip([*map(str, self._bounds), "+Inf"], self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets

"""Provider call metrics: calls, attempts, retries, budget exhaustion, breaker state and transitions, limiter
waits, bulkhead rejections and latency, by provider."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .breaker import BreakerState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProviderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter("provider_calls_total", "Logical provider calls by outcome", ("provider", "outcome"),
                             registry=registry)  # fmt: skip
        self.attempts = Counter("provider_attempts_total", "HTTP attempts by result", ("provider", "result"),
                                registry=registry)  # fmt: skip
        self.retries = Counter("provider_retries_total", "Retries made", ("provider",), registry=registry)
        self.budget_exhausted = Counter(
            "provider_retry_budget_exhausted_total", "Retries refused by the retry budget", ("provider",),
            registry=registry,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "provider_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ("provider",), registry=registry
        )
        self.breaker_transitions = Counter(
            "provider_breaker_transitions_total",
            "Circuit breaker state changes",
            ("provider", "from_state", "to_state"),
            registry=registry,
        )
        self.limiter_wait = Histogram(
            "provider_limiter_wait_seconds", "Time waited for the outbound rate limiter", ("provider",),
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.bulkhead_rejections = Counter(
            "provider_bulkhead_rejections_total", "Calls refused because the bulkhead was full", ("provider",),
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "provider_call_duration_seconds", "Logical call duration, all attempts and waits", ("provider", "outcome"),
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip

    def transition(self, provider: str, previous: BreakerState, current: BreakerState) -> None:
        self.breaker_state.labels(provider).set(current.value)
        self.breaker_transitions.labels(provider, previous.name.lower(), current.name.lower()).inc()

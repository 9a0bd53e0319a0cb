"""Provider metrics: plain counters on the hot path, exported as Prometheus families on scrape."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from app.src.resilience.breaker import BreakerState
from app.src.resilience.metrics import ProviderMetrics


@pytest.mark.requirement("NFR-6")
def test_every_provider_number_is_exported_with_its_labels() -> None:
    registry = CollectorRegistry(auto_describe=True)
    stats = ProviderMetrics(registry).provider("payments")
    for seconds in (0.003, 0.007, 40.0):
        stats.call_ended("success", seconds)
    stats.call_ended("timeout", 10.0)
    stats.attempts["200"] += 3
    stats.attempts["timeout"] += 2
    stats.retries += 1
    stats.budget_exhausted += 1
    stats.bulkhead_rejections += 2
    stats.limiter_wait.observe(0.02)
    stats.transition(BreakerState.CLOSED, BreakerState.OPEN)
    exposition = generate_latest(registry).decode()
    expected = [
        'provider_calls_total{outcome="success",provider="payments"} 3.0',
        'provider_calls_total{outcome="timeout",provider="payments"} 1.0',
        'provider_call_duration_seconds_bucket{le="0.005",outcome="success",provider="payments"} 1.0',
        'provider_call_duration_seconds_bucket{le="0.01",outcome="success",provider="payments"} 2.0',
        'provider_call_duration_seconds_bucket{le="30.0",outcome="success",provider="payments"} 2.0',
        'provider_call_duration_seconds_bucket{le="+Inf",outcome="success",provider="payments"} 3.0',
        'provider_call_duration_seconds_count{outcome="success",provider="payments"} 3.0',
        'provider_call_duration_seconds_sum{outcome="success",provider="payments"} 40.01',
        'provider_call_duration_seconds_bucket{le="10.0",outcome="timeout",provider="payments"} 1.0',
        'provider_attempts_total{provider="payments",result="200"} 3.0',
        'provider_attempts_total{provider="payments",result="timeout"} 2.0',
        'provider_retries_total{provider="payments"} 1.0',
        'provider_retry_budget_exhausted_total{provider="payments"} 1.0',
        'provider_bulkhead_rejections_total{provider="payments"} 2.0',
        'provider_limiter_wait_seconds_bucket{le="0.025",provider="payments"} 1.0',
        'provider_breaker_state{provider="payments"} 2.0',
        'provider_breaker_transitions_total{from_state="closed",provider="payments",to_state="open"} 1.0',
    ]
    missing = [line for line in expected if line not in exposition]
    assert not missing, exposition


def test_each_provider_has_its_own_numbers_and_a_quiet_one_still_shows_its_breaker() -> None:
    registry = CollectorRegistry()
    metrics = ProviderMetrics(registry)
    metrics.provider("payments").retries += 4
    metrics.provider("notify")
    exposition = generate_latest(registry).decode()
    assert 'provider_retries_total{provider="payments"} 4.0' in exposition
    assert 'provider_retries_total{provider="notify"} 0.0' in exposition
    assert 'provider_breaker_state{provider="notify"} 0.0' in exposition
    assert metrics.provider("payments") is metrics.provider("payments")


def test_the_provider_metrics_are_exported_under_the_names_and_help_operators_read() -> None:
    registry = CollectorRegistry()
    ProviderMetrics(registry).provider("payments")
    assert {(family.name, family.type, family.documentation) for family in registry.collect()} == {
        ("provider_calls", "counter", "Logical provider calls by outcome"),
        ("provider_call_duration_seconds", "histogram", "Logical call duration, all attempts and waits"),
        ("provider_attempts", "counter", "HTTP attempts by result"),
        ("provider_retries", "counter", "Retries made"),
        ("provider_retry_budget_exhausted", "counter", "Retries refused by the retry budget"),
        ("provider_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open"),
        ("provider_breaker_transitions", "counter", "Circuit breaker state changes"),
        ("provider_limiter_wait_seconds", "histogram", "Time waited for the outbound rate limiter"),
        ("provider_bulkhead_rejections", "counter", "Calls refused because the bulkhead was full"),
    }

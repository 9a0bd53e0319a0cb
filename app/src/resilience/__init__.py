"""Outbound: timeouts, retries with backoff and a budget, circuit breaker, rate limiter and bulkhead per provider.
Inbound: load shedding and per-client rate limits."""

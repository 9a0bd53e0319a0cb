"""How one provider is called: every timeout, retry, budget, breaker, limiter and bulkhead setting."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# HTTP's idempotent methods (RFC 9110, 9.2.2): a request of these whose answer was lost cannot have acted twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
NEVER_RETRIED_WITHOUT_KEY = frozenset({"POST", "PATCH"})  # not idempotent: a retry could act twice


class ProviderPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: float = Field(default=1.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(default=5.0, gt=0, description="Seconds between bytes of the answer.")
    deadline: float = Field(default=10.0, gt=0, description="Seconds for the whole call: every attempt and wait.")
    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base: float = Field(default=0.1, ge=0)
    backoff_cap: float = Field(default=2.0, ge=0)
    retry_statuses: frozenset[int] = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
    retry_methods: frozenset[str] = Field(
        default=IDEMPOTENT_METHODS,
        description="Methods retried without an idempotency key; POST and PATCH only ever with one.",
    )
    retry_failures: frozenset[Literal["connect", "timeout", "transport"]] = Field(
        default=frozenset({"connect", "timeout", "transport"}),
        description="Failures without a status that are retried: no connection (nothing was sent, so retried "
        "whatever the method), no answer in time, the connection broken after sending.",
    )
    budget_ratio: float = Field(default=0.2, ge=0, le=1, description="Retries per call, over the budget window.")
    budget_minimum: int = Field(default=3, ge=0, description="Retries allowed in the window whatever the traffic.")
    budget_window: float = Field(default=10.0, gt=0)
    breaker_window: int = Field(default=20, ge=1, description="The last calls the failure rate is taken over.")
    breaker_minimum_calls: int = Field(default=10, ge=1)
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_open_seconds: float = Field(default=5.0, gt=0)
    breaker_half_open_calls: int = Field(default=2, ge=1)
    rate_per_second: float | None = Field(
        default=None, gt=0, description="The provider's published rate; none: no limit."
    )
    rate_burst: int = Field(default=1, ge=1)
    max_response_bytes: int = Field(
        default=1_048_576, ge=1, description="The largest answer read; a larger one fails the call unread."
    )
    bulkhead_limit: int = Field(default=32, ge=1, description="Calls in flight at most.")
    bulkhead_max_wait: float = Field(default=0.05, ge=0, description="Seconds to wait for a place, then fail fast.")

    @model_validator(mode="after")
    def _consistent(self) -> ProviderPolicy:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must not be below backoff_base")
        if self.breaker_minimum_calls > self.breaker_window:
            raise ValueError("breaker_minimum_calls cannot exceed breaker_window")
        if unsafe := sorted(self.retry_methods & NEVER_RETRIED_WITHOUT_KEY):
            raise ValueError(f"retry_methods cannot hold {', '.join(unsafe)}: retried only with an idempotency key")
        return self

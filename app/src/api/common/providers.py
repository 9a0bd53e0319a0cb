"""What a provider call gives its caller: a response, or one error that says what happened.

Services decide from these, never from aiohttp's exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(slots=True)
class ProviderResponse:
    """Read-only by convention (not frozen: a frozen dataclass costs twice as much to make, once per attempt)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    attempts: int

    def json(self) -> Any:
        return orjson.loads(self.body)


class ProviderError(Exception):
    """Base of every failed provider call; `provider` names which."""

    def __init__(self, provider: str, message: str, *, attempts: int = 0) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.attempts = attempts


class ProviderTimeoutError(ProviderError):
    """No answer within the call's deadline. `may_have_succeeded`: a request without idempotency was sent."""

    def __init__(self, provider: str, message: str, *, attempts: int = 0, may_have_succeeded: bool = False) -> None:
        super().__init__(provider, message, attempts=attempts)
        self.may_have_succeeded = may_have_succeeded


class ProviderUnavailableError(ProviderError):
    """The provider failed (5xx, connection refused) and retrying could not help within the deadline."""


class CircuitOpenError(ProviderUnavailableError):
    """The provider failed so often lately that calls fail fast without reaching it."""


class ProviderRateLimitedError(ProviderError):
    """The provider said 429 and asked to wait longer than the call may (`retry_after` seconds, if it said)."""

    def __init__(self, provider: str, message: str, *, attempts: int = 0, retry_after: float | None = None) -> None:
        super().__init__(provider, message, attempts=attempts)
        self.retry_after = retry_after


class ProviderBusyError(ProviderError):
    """Too many calls to this provider are in flight already (the bulkhead is full), or its rate is spent."""


class ProviderRejectedError(ProviderError):
    """The provider refused the request (a 4xx that retrying cannot change); its status and body are kept."""

    def __init__(self, provider: str, status: int, body: bytes, *, attempts: int = 0) -> None:
        super().__init__(provider, f"rejected with {status}", attempts=attempts)
        self.status = status
        self.body = body


class ProviderResponseTooLargeError(ProviderError):
    """The answer was larger than the policy's `max_response_bytes`; it was not read. `may_have_succeeded`: the
    request (without idempotency) may have acted before answering."""

    def __init__(self, provider: str, message: str, *, attempts: int = 0, may_have_succeeded: bool = False) -> None:
        super().__init__(provider, message, attempts=attempts)
        self.may_have_succeeded = may_have_succeeded


class OutcomeUnknownError(ProviderError):
    """The connection failed after the request was sent: the provider may have acted. Reconcile, or retry
    with the same idempotency key."""


class EmailSender(Protocol):
    """Sends one e-mail; the same `idempotency_key` never sends twice. Raises a ProviderError when it cannot."""

    async def send_email(self, to: str, subject: str, body: str, *, idempotency_key: str) -> None: ...

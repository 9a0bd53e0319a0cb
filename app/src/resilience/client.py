"""One client per provider: every call runs under a deadline, with retries that are safe, spaced, budgeted and
never earlier than Retry-After, behind a circuit breaker, an outbound rate limiter and a bulkhead.

Per attempt, in order: breaker permit -> rate limiter (waits at most until the deadline) -> bulkhead (a short
wait, then fail fast) -> the HTTP exchange under connect/read timeouts and the remaining deadline -> one log
line and the attempt's count. Per call: the outcome and its duration.

This path runs once per provider call, so it is kept short: `make bench-resilience` measures what it adds to a
raw aiohttp call (about 8% of the call's time and a fifth of its client CPU, the log line the largest part).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiolimiter import AsyncLimiter

from app.src.api.common.providers import (
    CircuitOpenError,
    OutcomeUnknownError,
    ProviderBusyError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderRejectedError,
    ProviderResponse,
    ProviderResponseTooLargeError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from app.src.resilience.backoff import full_jitter, retry_after_seconds
from app.src.resilience.breaker import BreakerOpenError, CircuitBreaker
from app.src.resilience.budget import RetryBudget
from app.src.resilience.bulkhead import Bulkhead, BulkheadFullError
from app.src.resilience.lifo_slots import lend_slot
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import IDEMPOTENT_METHODS, ProviderPolicy
from app.src.utils import tracing
from app.src.utils.logs import get_logger, request_id_var

# aiohttp rounds timeouts over 5 s up to the next whole second (to share timers): a 10 s deadline could end 1 s
# late. Timeouts longer than this are rounded, so none is.
EXACT = math.inf


@dataclass(slots=True)
class _AttemptError(Exception):
    """One failed attempt that a retry might cure."""

    kind: str  # "status" | "connect" (nothing was sent) | "transport" (sent, then the connection failed) | "timeout"
    response: ProviderResponse | None = None
    retry_after: float | None = None

    @property
    def nothing_sent(self) -> bool:
        return self.kind == "connect"


class ProviderClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        policy: ProviderPolicy,
        metrics: ProviderMetrics,
        *,
        api_key: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._api_key = api_key
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._session: aiohttp.ClientSession | None = None
        self._stats = stats = metrics.provider(name)
        self._budget = RetryBudget(policy.budget_ratio, policy.budget_minimum, policy.budget_window)
        self.breaker = CircuitBreaker(
            window=policy.breaker_window,
            minimum_calls=policy.breaker_minimum_calls,
            failure_rate=policy.breaker_failure_rate,
            open_seconds=policy.breaker_open_seconds,
            half_open_calls=policy.breaker_half_open_calls,
            on_transition=stats.transition,
        )
        self._bulkhead = Bulkhead(policy.bulkhead_limit, policy.bulkhead_max_wait)
        self._limiter = (
            AsyncLimiter(policy.rate_burst, policy.rate_burst / policy.rate_per_second)
            if policy.rate_per_second is not None
            else None
        )
        self._log = get_logger("provider", provider=name)

    async def start(self) -> None:
        if self._session is None:
            # as many connections as the bulkhead lets calls in: none of them waits for a connection
            connector = aiohttp.TCPConnector(limit=self.policy.bulkhead_limit)
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._session = aiohttp.ClientSession(connector=connector, headers=headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ProviderClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        form: Sequence[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> ProviderResponse:
        """One logical call: a response below 400, or a ProviderError that says what happened."""
        started = time.monotonic()
        deadline_at = started + (self.policy.deadline if deadline is None else deadline)
        sent_headers = dict(headers) if headers else {}
        in_context = request_id_var.get()
        if (request_id := request_id or in_context) is not None:
            sent_headers["X-Request-ID"] = request_id
        if idempotency_key is not None:
            sent_headers["Idempotency-Key"] = idempotency_key
        body, content_type = _encoded(json, form)
        if content_type is not None:
            sent_headers["Content-Type"] = content_type
        retryable = method in self.policy.retry_methods or idempotency_key is not None
        self._budget.record_call()
        # A request id given here (a job acting for a request) goes on the attempt lines too, as the context's would.
        replaced = request_id_var.set(request_id) if request_id != in_context else None
        with tracing.provider_span(self.name, method, path, sent_headers) as span:
            try:
                async with lend_slot():  # the request runs nothing while it waits on the provider
                    response = await self._with_retries(method, path, body, sent_headers, deadline_at, retryable)
            except ProviderError as error:
                self._stats.call_ended(_outcome_of(error), time.monotonic() - started)
                raise
            except asyncio.CancelledError:
                self._stats.call_ended("cancelled", time.monotonic() - started)
                raise
            finally:
                if replaced is not None:
                    request_id_var.reset(replaced)
            if span is not None:
                span.set_attributes({"http.response.status_code": response.status, "attempts": response.attempts})
        self._stats.call_ended("success", time.monotonic() - started)
        return response

    async def _with_retries(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], deadline_at: float, retryable: bool
    ) -> ProviderResponse:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._attempt(method, path, body, headers, deadline_at, attempt)
                if response.status < 400:
                    return response
                if response.status not in self.policy.retry_statuses:
                    raise ProviderRejectedError(self.name, response.status, response.body, attempts=attempt)
                raise _AttemptError("status", response, retry_after_seconds(response.headers.get("Retry-After")))
            except _AttemptError as failure:
                delay = self._retry_delay(failure, attempt, retryable, deadline_at)
                if delay is None:
                    raise self._final(failure, method, attempt) from None
                self._stats.retries += 1
                await asyncio.sleep(delay)

    def _retry_delay(self, failure: _AttemptError, attempt: int, retryable: bool, deadline_at: float) -> float | None:
        """Seconds to wait before the next attempt, or None: no retry (unsafe, spent, too late, over budget)."""
        if not (retryable or failure.nothing_sent) or attempt >= self.policy.max_attempts:
            return None
        if failure.kind != "status" and failure.kind not in self.policy.retry_failures:
            return None
        delay = full_jitter(attempt, self.policy.backoff_base, self.policy.backoff_cap, self._rng)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        if time.monotonic() + delay >= deadline_at:
            return None
        if not self._budget.try_spend():
            self._stats.budget_exhausted += 1
            return None
        return delay

    def _final(self, failure: _AttemptError, method: str, attempts: int) -> ProviderError:
        name = self.name
        if failure.kind == "status":
            assert failure.response is not None  # noqa: S101 - a status failure carries its response
            status = failure.response.status
            if status == 429:
                return ProviderRateLimitedError(
                    name, "rate limited", attempts=attempts, retry_after=failure.retry_after
                )
            if status >= 500 or status == 408:
                return ProviderUnavailableError(name, f"answered {status}", attempts=attempts)
            return ProviderRejectedError(name, status, failure.response.body, attempts=attempts)
        if failure.kind == "connect":
            return ProviderUnavailableError(name, "could not connect", attempts=attempts)
        unsafe = method not in IDEMPOTENT_METHODS
        if failure.kind == "timeout":
            return ProviderTimeoutError(name, "no answer in time", attempts=attempts, may_have_succeeded=unsafe)
        if unsafe:
            return OutcomeUnknownError(name, "the connection failed after the request was sent", attempts=attempts)
        return ProviderUnavailableError(name, "the connection failed", attempts=attempts)

    async def _attempt(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], deadline_at: float, attempt: int
    ) -> ProviderResponse:
        """One HTTP exchange under the breaker, the limiter and the bulkhead; one log line whatever happens."""
        if self._session is None:
            raise RuntimeError(f"the {self.name} client is not started")
        now = time.monotonic()
        if now >= deadline_at:
            raise ProviderTimeoutError(self.name, "the deadline passed before the attempt", attempts=attempt - 1)
        try:
            permit = self.breaker.permit()
        except BreakerOpenError as open_:
            raise CircuitOpenError(self.name, str(open_), attempts=attempt - 1) from None
        with permit:
            if self._limiter is not None:
                if self._limiter.has_capacity():
                    await self._limiter.acquire()
                else:
                    await self._wait_for_rate(self._limiter, deadline_at, attempt)
            if not self._bulkhead.try_enter():
                await self._wait_for_place(attempt)
            sent_at = time.monotonic()  # after any wait for the rate or a place, which the deadline also covers
            timeout = aiohttp.ClientTimeout(
                total=max(0.001, deadline_at - sent_at),
                sock_connect=self.policy.connect_timeout,
                sock_read=self.policy.read_timeout,
                ceil_threshold=EXACT,
            )
            result = "error"
            try:
                async with self._session.request(
                    method, self.base_url + path, data=body, headers=headers, timeout=timeout
                ) as answer:
                    content = await _read_at_most(answer, self.policy.max_response_bytes)
                    if content is None:
                        result = "too_large"
                        permit.failed()
                        raise self._too_large(method, attempt)
                    response = ProviderResponse(answer.status, answer.headers, content, attempt)
                result = str(response.status)
            except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as error:
                result = "connect_error"
                permit.failed()
                raise _AttemptError("connect") from error
            except (TimeoutError, aiohttp.ServerTimeoutError) as error:
                result = "timeout"
                permit.failed()
                raise _AttemptError("timeout") from error
            except aiohttp.ClientError as error:
                result = "transport_error"
                permit.failed()
                raise _AttemptError("transport") from error
            finally:
                self._bulkhead.leave()
                self._stats.attempts[result] += 1
                self._log.info(
                    "provider attempt",
                    method=method,
                    path=path,
                    attempt=attempt,
                    result=result,
                    duration_ms=round((time.monotonic() - sent_at) * 1000, 2),
                )
            permit.record(failed=response.status >= 500 or response.status == 408)
            return response

    def _too_large(self, method: str, attempts: int) -> ProviderResponseTooLargeError:
        return ProviderResponseTooLargeError(
            self.name,
            f"the answer is larger than {self.policy.max_response_bytes} bytes",
            attempts=attempts,
            may_have_succeeded=method not in IDEMPOTENT_METHODS,
        )

    async def _wait_for_place(self, attempt: int) -> None:
        try:
            await self._bulkhead.enter()
        except BulkheadFullError:
            self._stats.bulkhead_rejections += 1
            raise ProviderBusyError(self.name, "too many calls in flight", attempts=attempt - 1) from None

    async def _wait_for_rate(self, limiter: AsyncLimiter, deadline_at: float, attempt: int) -> None:
        """A place in the outbound rate, waiting at most until the deadline."""
        waited_from = time.monotonic()
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + deadline_at - waited_from):
                await limiter.acquire()
        except TimeoutError:
            raise ProviderBusyError(
                self.name, "the outbound rate is spent until the deadline", attempts=attempt - 1
            ) from None
        finally:
            self._stats.limiter_wait.observe(time.monotonic() - waited_from)


async def _read_at_most(answer: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The answer's body, or None when it is larger than `limit` bytes (then the rest is never read, and the
    connection is closed rather than reused)."""
    length = answer.content_length
    if length is not None and "Content-Encoding" not in answer.headers:
        return await answer.read() if length <= limit else None
    body = bytearray()  # no length, or the length before decompression: read until the end or past the limit
    async for chunk in answer.content.iter_chunked(65_536):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _outcome_of(error: ProviderError) -> str:
    """The outcome a failed call is counted under: each error the client raises has one of its own."""
    return {
        CircuitOpenError: "circuit_open",
        ProviderTimeoutError: "timeout",
        ProviderUnavailableError: "unavailable",
        ProviderRateLimitedError: "rate_limited",
        ProviderBusyError: "busy",
        ProviderRejectedError: "rejected",
        OutcomeUnknownError: "outcome_unknown",
        ProviderResponseTooLargeError: "too_large",
    }[type(error)]


def _encoded(json: Any, form: Sequence[tuple[str, str]] | None) -> tuple[bytes | None, str | None]:
    """The request body and its Content-Type: JSON, or a form (Stripe's wire format), or none."""
    if json is not None:
        return orjson.dumps(json), "application/json"
    if form is not None:
        return urlencode(form).encode(), "application/x-www-form-urlencoded"
    return None, None

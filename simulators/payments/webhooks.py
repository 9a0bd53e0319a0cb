"""Events POSTed to the registered endpoint, signed like Stripe's, with delays, duplicates, reordering, drops
and retries while the receiver answers non-2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from simulators.engine.clock import SimClock
from simulators.payments.models import WebhookSettings

API_VERSION = "2026-10-28.endive"  # what stripe 16 pins; events carry it as Stripe's do
SIGNATURE_HEADER = "Stripe-Signature"  # the scheme is Stripe's: its SDKs verify these events
MAX_DELIVERIES_PER_SCOPE = 10_000


def sign(payload: bytes, timestamp: int, webhook_secrets: list[str]) -> str:
    """`t=<unix>,v1=<hex>[,v1=<hex>...]`: one v1 per secret, so receivers can rotate theirs."""
    signed = f"{timestamp}.".encode() + payload
    digests = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in webhook_secrets]
    return ",".join([f"t={timestamp}", *(f"v1={digest}" for digest in digests)])


class WebhookSender:
    def __init__(
        self, clock: SimClock, seed: int, spawn: Callable[[Coroutine[Any, Any, Any]], None], defaults: WebhookSettings
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._spawn = spawn
        self.defaults = defaults
        self._endpoints: dict[str | None, WebhookSettings] = {}
        self._rngs: dict[str | None, random.Random] = {}
        self._deliveries: defaultdict[str | None, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=MAX_DELIVERIES_PER_SCOPE)
        )
        self._session: aiohttp.ClientSession | None = None

    def settings_for(self, scope: str | None) -> WebhookSettings:
        return self._endpoints.get(scope) or self._endpoints.get(None) or self.defaults

    def register(self, scope: str | None, settings: WebhookSettings) -> None:
        self._endpoints[scope] = settings

    def deliveries(self, scope: str | None) -> list[dict[str, Any]]:
        return list(self._deliveries.get(scope, ()))

    def forget(self, scope: str | None, seed: int) -> None:
        if scope is None:
            self._seed = seed
            self._endpoints.clear()
            self._rngs.clear()
            self._deliveries.clear()
        else:
            self._endpoints.pop(scope, None)
            self._rngs.pop(scope, None)
            self._deliveries.pop(scope, None)

    def _rng(self, scope: str | None) -> random.Random:
        rng = self._rngs.get(scope)
        if rng is None:
            rng = self._rngs[scope] = random.Random(f"{self._seed}:{scope or ''}:webhooks")  # noqa: S311
        return rng

    def emit(self, scope: str | None, event_type: str, data: dict[str, Any]) -> None:
        settings = self.settings_for(scope)
        event = {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "type": event_type,
            "api_version": API_VERSION,
            "created": int(self._clock.now(scope)),
            "data": {"object": data},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
        }
        log = self._deliveries[scope]
        if settings.url is None:
            log.append({"event": event["id"], "type": event_type, "outcome": "no_endpoint"})
            return
        rng = self._rng(scope)
        for copy in range(1 + settings.duplicates):
            if settings.drop_probability and rng.random() < settings.drop_probability:
                log.append({"event": event["id"], "type": event_type, "copy": copy, "outcome": "dropped"})
                continue
            delay = settings.delay_seconds + rng.uniform(0, settings.reorder_window_seconds)
            self._spawn(self._deliver(scope, event, copy, settings, delay))

    async def _deliver(
        self, scope: str | None, event: dict[str, Any], copy: int, settings: WebhookSettings, delay: float
    ) -> None:
        assert settings.url is not None  # noqa: S101 - emit() checked it
        if delay:
            await asyncio.sleep(delay)
        payload = json.dumps(event).encode()
        log = self._deliveries[scope]
        for attempt in range(1, settings.max_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                # the wall clock's time, not the scope's: a receiver checks it against its own clock
                SIGNATURE_HEADER: sign(payload, int(time.time()), settings.secrets),
            }
            record: dict[str, Any] = {"event": event["id"], "type": event["type"], "copy": copy, "attempt": attempt}
            try:
                async with self._client().post(
                    settings.url,
                    data=payload,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds),
                ) as response:
                    record.update(outcome="delivered" if response.status < 300 else "rejected", status=response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                record.update(outcome="failed", error=type(error).__name__)
            log.append(record)
            if record["outcome"] == "delivered":
                return
            if attempt < settings.max_attempts:
                await asyncio.sleep(settings.retry_base_seconds * 2 ** (attempt - 1))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

"""Stripe's idempotency semantics: a key (per API key and scope) remembers its parameters and its response."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from quart import Response

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass
class _Record:
    fingerprint: str
    response: tuple[int, bytes, dict[str, str]] | None = None  # None while the first request is in flight
    result_id: str | None = None


def fingerprint(method: str, path: str, params: Any) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def stripe_error(status: int, type_: str, message: str, **extra: Any) -> Response:
    body = json.dumps({"error": {"type": type_, "message": message, **extra}})
    return Response(body, status=status, content_type="application/json")


class IdempotencyStore:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str], _Record] = {}

    async def run(
        self,
        identity: tuple[str, str, str],
        request_fingerprint: str,
        produce: Callable[[], Awaitable[tuple[Response, str | None]]],
    ) -> Response:
        """The stored response for a completed key, 400 for other parameters, 409 while in flight; otherwise
        `produce` the response (and the id of what it made) and remember both. A failure forgets the key."""
        record = self._records.get(identity)
        if record is not None:
            if record.fingerprint != request_fingerprint:
                return stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            if record.response is None:
                return stripe_error(
                    409,
                    "idempotency_error",
                    "There is currently another in-progress request using this Idempotent Key.",
                    code="idempotency_key_in_use",
                )
            status, body, headers = record.response
            return Response(body, status=status, headers={**headers, REPLAYED_HEADER: "true"})
        record = self._records[identity] = _Record(request_fingerprint)
        try:
            response, result_id = await produce()
        except BaseException:
            del self._records[identity]
            raise
        record.response = (response.status_code, await response.get_data(as_text=False), dict(response.headers))
        record.result_id = result_id
        return response

    def result_id(self, identity: tuple[str, str, str]) -> str | None:
        record = self._records.get(identity)
        return None if record is None else record.result_id

    def forget_scope(self, scope: str | None) -> None:
        if scope is None:
            self._records.clear()
        else:
            for identity in [identity for identity in self._records if identity[0] == scope]:
                del self._records[identity]

"""`@idempotent("operation")`: a route that creates something opts into idempotency keys (the rules are in
app/src/api/idempotency/keys.py). Under the body's validation, so a request that fails it is answered without
touching a key; the route receives its `claim` and returns a Response, which is kept when it is final (2xx, or a
4xx that the same request would get again) and replayed byte for byte with `Idempotent-Replayed: true`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from pydantic import BaseModel
from quart import Response, g, request

from app.http.documented import reads_headers
from app.http.problems import ProblemError, domain_error_response
from app.http.services import services
from app.src.api.common.errors import DomainError
from app.src.api.idempotency.keys import Claim, KeyScope, StoredAnswer, fingerprint
from app.src.utils.logs import module_logger

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("Content-Type", "Location")
Handler = Callable[..., Awaitable[Response]]
_log = module_logger("idempotency")

IDEMPOTENCY_KEY = {
    "name": HEADER,
    "in": "header",
    "required": True,
    "description": "Unique per request (a UUID); the same key repeats the first request's answer. "
    f"1-{MAX_KEY_LENGTH} printable ASCII characters; a structured-field string (in double quotes) is accepted.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[\\x20-\\x7e]+$"},
}


def idempotency_key(value: str | None) -> str:
    """The header's key; ProblemError 400 when it is missing or malformed."""
    if value is None:
        raise ProblemError(
            400, f"This request needs an {HEADER} header: a unique value (a UUID) per request.",
            slug="idempotency-key-missing",
        )  # fmt: skip
    if len(value) >= 2 and value[0] == value[-1] == '"':  # draft-ietf-httpapi-idempotency-key-header: an sf-string
        value = value[1:-1]
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        raise ProblemError(
            400, f"The {HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            slug="idempotency-key-invalid",
        )  # fmt: skip
    return value


def idempotent(operation: str) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Response:
            key = idempotency_key(request.headers.get(HEADER))
            parameters = {name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
                          for name, value in kwargs.items()}  # fmt: skip
            scope = KeyScope(g.profile.user_id, g.clientId or "", key, operation)
            keys = services().idempotency
            began = await keys.begin(scope, fingerprint(operation, parameters))
            if isinstance(began, StoredAnswer):
                return Response(began.body, status=began.status, headers={**began.headers, REPLAYED: "true"})
            try:
                response = await handler(*args, claim=began, **kwargs)
            except DomainError as error:
                if error.transient:
                    await _release(began)
                    raise
                response = await domain_error_response(error)
            except BaseException:
                await _release(began)
                raise
            if not _final(response):
                await _release(began)
                return response
            kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
            await keys.complete(began, StoredAnswer(response.status_code, kept, await response.get_data(as_text=False)))
            return response

        return reads_headers(IDEMPOTENCY_KEY)(wrapper)

    return decorator


def _final(response: Response) -> bool:
    """An answer the same request would get again: 2xx but 202 (work still under way), or a deterministic 4xx."""
    status = response.status_code
    return (200 <= status < 300 and status != 202) or 400 <= status < 500


async def _release(claim: Claim) -> None:
    """Even as the request is cancelled; a failure here is logged, not raised over the request's own (the key
    then frees itself when its lease runs out)."""
    try:
        await asyncio.shield(services().idempotency.release(claim))
    except Exception as error:  # noqa: BLE001 - the request's own error says more
        _log.warning("idempotency key not released", key_id=claim.key_id, error=type(error).__name__)

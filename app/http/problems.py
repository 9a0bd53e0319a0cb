"""Every error leaves as application/problem+json; no trace, SQL or exception text ever reaches a client.

Services raise domain errors (app/src/api/common/errors.py); `ANSWERS` is the one place that says how each kind
is answered over HTTP. `ProblemError` is for what only HTTP knows (a missing header, a body that is not JSON).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from quart import Quart, Response, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from app.src.api.billing.service import PaymentDeclinedError
from app.src.api.common.errors import (
    AuthFailure,
    ConflictError,
    DomainError,
    FieldProblem,
    ForbiddenError,
    GoneError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    InvalidParametersError,
    LockedError,
    NotFoundError,
    NotReadyError,
    UnauthorizedError,
    UnavailableError,
    field_problems,
)
from app.src.utils.logs import module_logger, request_id_var
from app.src.utils.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type

_log = module_logger("errors")


class ProblemError(Exception):
    """An error of the HTTP exchange itself, raised by the HTTP layer and rendered as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = problem_type(slug) if slug else "about:blank"
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


# A key the client sent is echoed in the pointer: control characters and lone surrogates (a query string's
# undecodable bytes) become U+FFFD, so a problem body is always plain, printable Unicode.
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def json_pointer(location: Iterable[str | int]) -> str:
    """RFC 6901: `~` and `/` inside a key are escaped, so every key reads back as itself (but for the characters
    that cannot be shown, each replaced by U+FFFD)."""
    return "".join(
        "/" + _UNSHOWABLE.sub("\ufffd", str(part)).replace("~", "~0").replace("/", "~1") for part in location
    )


def field_errors(problems: Iterable[FieldProblem]) -> list[dict[str, str]]:
    return [{"pointer": json_pointer(item.location), "detail": item.detail, "code": item.code} for item in problems]


def _no_headers(error: Any) -> dict[str, str]:
    return {}


def _retry_after(error: LockedError | UnavailableError | IdempotencyKeyInUseError) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)}


_BEARER_CHALLENGES = {
    AuthFailure.MISSING_TOKEN: 'Bearer realm="api"',
    AuthFailure.INVALID_TOKEN: 'Bearer realm="api", error="invalid_token"',
}


def _bearer_challenge(error: UnauthorizedError) -> dict[str, str]:
    """RFC 6750: a WWW-Authenticate challenge where a token was missing or not valid (not for a password or code)."""
    challenge = _BEARER_CHALLENGES.get(error.reason)
    return {} if challenge is None else {"WWW-Authenticate": challenge}


def _errors_extension(problems: Sequence[FieldProblem], total: int) -> dict[str, Any]:
    """The failing fields; and, where only the first were listed, how many were left out."""
    extensions: dict[str, Any] = {"errors": field_errors(problems)}
    if total > len(problems):
        extensions["errors_omitted"] = total - len(problems)
    return extensions


def _field_errors(error: InvalidInputError) -> dict[str, Any]:
    return _errors_extension(error.problems, error.total)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    title: str | None = None  # None: the status's reason phrase
    headers: Callable[[Any], dict[str, str]] = field(default=_no_headers)
    extensions: Callable[[Any], dict[str, Any]] | None = None


ANSWERS: dict[type[DomainError], Answer] = {
    InvalidInputError: Answer(422, "Validation failed", extensions=_field_errors),
    InvalidParametersError: Answer(400, "Invalid request parameters", extensions=_field_errors),
    UnauthorizedError: Answer(401, headers=_bearer_challenge),
    ForbiddenError: Answer(403),
    NotFoundError: Answer(404),
    GoneError: Answer(410),
    ConflictError: Answer(409),
    IdempotencyKeyInUseError: Answer(409, headers=_retry_after),
    IdempotencyKeyReusedError: Answer(422, "Idempotency key reused"),
    LockedError: Answer(429, headers=_retry_after),
    NotReadyError: Answer(503, "Not ready", headers=_retry_after),
    UnavailableError: Answer(503, headers=_retry_after),
    PaymentDeclinedError: Answer(402, "Payment declined", extensions=lambda error: {"payment_id": error.payment.id}),
}


def answer_for(kind: type[DomainError]) -> Answer:
    """The answer of `kind`, or of the nearest kind it specialises."""
    for base in kind.__mro__:
        answer = ANSWERS.get(base)
        if answer is not None:
            return answer
    raise LookupError(f"no HTTP answer for {kind.__name__}: add it to ANSWERS")


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    body = problem_body(
        status=status,
        title=title,
        detail=detail,
        type_=type_,
        instance=request.path,
        request_id=request_id_var.get(),
        extensions=extensions,
    )
    response = Response(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
    if headers:
        response.headers.update(headers)
    return response


async def domain_error_response(error: DomainError) -> Response:
    answer = answer_for(type(error))
    return problem_response(
        answer.status,
        answer.title or HTTPStatus(answer.status).phrase,
        error.detail,
        type_=problem_type(error.code),
        headers=answer.headers(error),
        extensions=None if answer.extensions is None else answer.extensions(error),
    )


async def _problem(error: ProblemError) -> Response:
    return problem_response(
        error.status, error.title, error.detail, type_=error.type, headers=error.headers, extensions=error.extensions
    )


async def _http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    return problem_response(status, error.name, error.description or error.name, headers=headers)


async def _querystring_invalid(error: RequestSchemaValidationError) -> Response:
    return problem_response(
        400,
        "Invalid request parameters",
        "The request's parameters do not match the schema.",
        type_=problem_type("invalid-parameters"),
        extensions=_errors_extension(*field_problems(error.validation_error)),
    )


async def _unhandled(error: Exception) -> Response:
    _log.error("unhandled exception", path=request.path, exc_info=error)
    return problem_response(
        500,
        "Internal Server Error",
        "The server could not complete the request. Quote the request_id when reporting it.",
    )


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(DomainError, domain_error_response)
    app.register_error_handler(ProblemError, _problem)
    app.register_error_handler(RequestSchemaValidationError, _querystring_invalid)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unhandled)

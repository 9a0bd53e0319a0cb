"""Every error leaves as application/problem+json; no trace, SQL or exception text ever reaches a client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quart import Quart, Response, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from .logs import module_logger, request_id_var
from .src.utils.problems import PROBLEM_CONTENT_TYPE, ProblemError, problem_body, problem_type
from .validation import field_errors

_log = module_logger("errors")


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
        extensions={"errors": field_errors(error.validation_error)},
    )


async def _unhandled(error: Exception) -> Response:
    _log.error("unhandled exception", path=request.path, exc_info=error)
    return problem_response(
        500,
        "Internal Server Error",
        "The server could not complete the request. Quote the request_id when reporting it.",
    )


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(ProblemError, _problem)
    app.register_error_handler(RequestSchemaValidationError, _querystring_invalid)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unhandled)

"""Strict bodies: requests are JSON only, parsed and validated by pydantic-core in one step; responses are
serialised by pydantic-core. Both are documented in the OpenAPI by quart-schema."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError
from quart import Response, request
from quart_schema import document_response
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, DataSource
from werkzeug.exceptions import RequestEntityTooLarge

from app.http.problems import ProblemError
from app.src.api.common.errors import InvalidInputError, field_problems

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[..., Awaitable[Any]]


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


async def read_json_body(model: type[ModelT], max_bytes: int | None = None) -> ModelT:
    if max_bytes is not None and (request.content_length or 0) > max_bytes:
        raise RequestEntityTooLarge
    if not _is_json(request.mimetype):
        raise ProblemError(
            415,
            "The request body must be JSON, sent with Content-Type: application/json.",
            slug="unsupported-media-type",
            headers={"Accept-Post": "application/json"},
        )
    body = await request.get_data(cache=True, as_text=False)
    if max_bytes is not None and len(body) > max_bytes:  # sent without a Content-Length
        raise RequestEntityTooLarge
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors(include_url=False)):
            raise ProblemError(400, "The request body is not valid JSON.", slug="malformed-json") from None
        problems, total = field_problems(error)
        raise InvalidInputError("The request body does not match the schema.", problems, total=total) from None


def validate_body(model: type[BaseModel], max_bytes: int | None = None) -> Callable[[Handler], Handler]:
    """Like quart-schema's `validate_request`, strict: the handler gets `data=`, the OpenAPI documents the model.
    `max_bytes`: a route whose bodies are small refuses larger ones (413) before parsing them (the app's
    MAX_BODY_BYTES applies to every route)."""

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await handler(*args, data=await read_json_body(model, max_bytes), **kwargs)

        setattr(wrapper, QUART_SCHEMA_REQUEST_ATTRIBUTE, (model, DataSource.JSON))
        return wrapper

    return decorator


ResponseModelT = TypeVar("ResponseModelT", bound=BaseModel)
P = ParamSpec("P")


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, content_type="application/json")


def responds(
    model: type[ResponseModelT], status: int = 200
) -> Callable[[Callable[P, Awaitable[ResponseModelT]]], Callable[P, Awaitable[Response]]]:
    """The handler returns a `model` instance; pydantic-core serialises it straight to the response body, and
    quart-schema documents it. A handler returning anything else is a programming error (500)."""

    def decorator(handler: Callable[P, Awaitable[ResponseModelT]]) -> Callable[P, Awaitable[Response]]:
        @wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            result = await handler(*args, **kwargs)
            if type(result) is not model:
                raise TypeError(f"{handler.__qualname__} returned {type(result).__name__}, not {model.__name__}")
            return json_response(result, status)

        return document_response(model, status)(wrapper)

    return decorator

"""Problem details (RFC 9457) for every error the simulators write themselves: control API errors, injected
faults, rate limits. (Provider routes answer in their provider's own error format.)"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from quart import Response

PROBLEM_TYPE = "urn:proving-ground:simulator:"


class ControlError(Exception):
    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def json_pointer(location: Iterable[str | int]) -> str:
    """RFC 6901: `~` and `/` inside a key are escaped, so every key reads back as itself."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


def invalid(error: ValidationError) -> ControlError:
    errors = [
        {"pointer": json_pointer(item["loc"]), "detail": item["msg"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)
    ]
    return ControlError(400, "The control request is not valid: " + "; ".join(_describe(e) for e in errors), errors)


def _describe(error: dict[str, Any]) -> str:
    return f"{error['pointer'] or '/'}: {error['detail']}"


def problem_body(status: int, title: str, detail: str, *, slug: str | None = None, **extra: Any) -> dict[str, Any]:
    """The members every simulator problem has; `slug` names its type (by default, the title's words)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def problem(status: int, title: str, detail: str, instance: str, **extra: Any) -> Response:
    body = problem_body(status, title, detail, instance=instance, **extra)
    return Response(json.dumps(body), status=status, content_type="application/problem+json")

"""Errors of the control API are problem+json (RFC 9457), saying what is wrong."""

from __future__ import annotations

import json
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


def invalid(error: ValidationError) -> ControlError:
    errors = [
        {"pointer": "/" + "/".join(str(part) for part in item["loc"]), "detail": item["msg"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)
    ]
    return ControlError(400, "The control request is not valid: " + "; ".join(_describe(e) for e in errors), errors)


def _describe(error: dict[str, Any]) -> str:
    return f"{error['pointer'] or '/'}: {error['detail']}"


def problem(status: int, title: str, detail: str, instance: str, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return Response(json.dumps(body), status=status, content_type="application/problem+json")

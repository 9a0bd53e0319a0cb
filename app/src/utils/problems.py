"""RFC 9457 problem details: the one shape every error response takes, whoever writes it (the HTTP layer's error
handlers, or the inbound middleware that answers before the app)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:proving-ground:problem:"


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_PREFIX + slug


def problem_body(
    *,
    status: int,
    title: str,
    detail: str,
    type_: str,
    instance: str,
    request_id: str | None,
    extensions: Mapping[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
    }
    if extensions:
        body.update(extensions)
    return json.dumps(body, separators=(",", ":")).encode()

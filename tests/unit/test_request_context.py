"""What the request-context middleware counts when the app answers, fails, or the client leaves first."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app.http.metrics import HttpMetrics
from app.middlewares import RequestContextMiddleware
from app.runtime.metrics_endpoint import exposition

SCOPE = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}


async def receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def count(app: Any) -> tuple[str, list[dict[str, Any]]]:
    registry = CollectorRegistry()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with contextlib.suppress(RuntimeError):  # the error test's app raises it on purpose
        await RequestContextMiddleware(app, HttpMetrics(registry))(dict(SCOPE), receive, send)  # type: ignore[arg-type]
    return exposition(registry)[0].decode(), sent


def counted(exposition: str, status: int) -> bool:
    return f'http_requests_total{{method="GET",route="<unmatched>",status="{status}"}} 1.0' in exposition


async def test_an_answer_is_counted_with_its_status_and_carries_the_request_id() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    exposition, sent = await count(app)
    assert counted(exposition, 204)
    assert [name for name, _ in sent[0]["headers"]] == [
        b"x-request-id",
        b"x-content-type-options",
        b"content-security-policy",
    ]


async def test_an_error_escaping_the_app_is_counted_as_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    exposition, _ = await count(app)
    assert counted(exposition, 500)


@pytest.mark.requirement("NFR-6")
async def test_a_request_whose_client_left_before_any_answer_is_counted_as_499_not_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the client is gone: the app stops without answering

    exposition, sent = await count(app)
    assert sent == []
    assert counted(exposition, 499)
    assert not counted(exposition, 500)

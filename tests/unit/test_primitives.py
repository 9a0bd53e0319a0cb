"""Small pure pieces: request ids, database URLs, field errors, problem bodies, metrics."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from app.database import async_url
from app.http.metrics import HttpMetrics
from app.http.problems import field_errors
from app.middlewares import _accepted_request_id
from app.runtime.metrics_endpoint import exposition
from app.src.api.common.errors import field_problems
from app.src.api.common.models.base import StrictModel
from app.src.utils.problems import problem_body


@pytest.mark.requirement("NFR-6")
@pytest.mark.parametrize("given", [b"abc", b"0f3c-11:22.x_y", b"A" * 128])
def test_well_formed_request_id_is_kept(given: bytes) -> None:
    assert _accepted_request_id([(b"x-request-id", given)]) == given.decode()


@pytest.mark.requirement("NFR-6")
@pytest.mark.parametrize("given", [b"", b"-lead", b"A" * 129, b"a b", b"a\nb", "é".encode()])
def test_malformed_or_missing_request_id_is_replaced(given: bytes) -> None:
    minted = _accepted_request_id([(b"x-request-id", given)])
    assert re.fullmatch("[0-9a-f]{32}", minted)
    assert re.fullmatch("[0-9a-f]{32}", _accepted_request_id([]))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://u:p@h:5/d", "postgresql+asyncpg://u:p@h:5/d"),
        ("postgres://u:p@h/d", "postgresql+asyncpg://u:p@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql://postgres:@/postgres?host=/tmp/pg", "postgresql+asyncpg://postgres:@/postgres?host=%2Ftmp%2Fpg"),
    ],
)
def test_any_postgres_uri_becomes_an_asyncpg_url(uri: str, expected: str) -> None:
    assert async_url(uri) == expected


def test_a_uri_for_another_database_is_refused() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        async_url("mysql://u@h/d")


class Nested(StrictModel):
    count: int


class Outer(StrictModel):
    items: list[Nested]
    odd_key: dict[str, int]


def test_field_errors_point_at_each_failing_field() -> None:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate({"items": [{"count": 1}, {"count": "2"}], "odd_key": {"a/b~c": "x"}})
    assert field_errors(field_problems(raised.value)[0]) == [
        {"pointer": "/items/1/count", "detail": "Input should be a valid integer", "code": "int_type"},
        {"pointer": "/odd_key/a~1b~0c", "detail": "Input should be a valid integer", "code": "int_type"},
    ]


def test_problem_body_has_every_rfc9457_member() -> None:
    body = json.loads(
        problem_body(
            status=409, title="Conflict", detail="d", type_="about:blank", instance="/x", request_id="r",
            extensions={"retry": True},
        )
    )  # fmt: skip
    assert body == {
        "type": "about:blank", "title": "Conflict", "status": 409, "detail": "d", "instance": "/x",
        "request_id": "r", "retry": True,
    }  # fmt: skip


def test_http_metrics_keep_one_series_per_method_route_and_status() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    metrics.observe("GET", "/a", 200, 0.003)
    metrics.observe("GET", "/a", 200, 0.2)
    metrics.observe("GET", "/a", 503, 0.001)
    text = exposition(registry)[0].decode()
    assert 'http_requests_total{method="GET",route="/a",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="/a",status="503"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/a",status="200"} 1.0' in text

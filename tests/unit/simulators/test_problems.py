"""The simulators' own problem details: one builder, and JSON Pointers escaped as RFC 6901 says."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from simulators.engine.engine import rate_limited_body
from simulators.engine.problems import invalid, problem_body


class Limits(BaseModel):
    per_route: dict[str, int]


def test_a_control_error_points_at_a_key_holding_slash_or_tilde_unambiguously() -> None:
    with pytest.raises(ValidationError) as raised:
        Limits.model_validate({"per_route": {"/v1/charges~new": "many"}})
    error = invalid(raised.value)
    assert [item["pointer"] for item in error.errors or []] == ["/per_route/~1v1~1charges~0new"]
    assert error.detail.startswith("The control request is not valid: /per_route/~1v1~1charges~0new: ")


def test_every_problem_the_simulators_write_has_the_same_members() -> None:
    assert rate_limited_body(2) == {
        "type": "urn:proving-ground:simulator:rate-limited",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit exceeded; retry after 2 s.",
    }
    assert problem_body(503, "Injected fault", "d", instance="/v1/x", errors=None) == {
        "type": "urn:proving-ground:simulator:injected-fault",
        "title": "Injected fault",
        "status": 503,
        "detail": "d",
        "instance": "/v1/x",
    }

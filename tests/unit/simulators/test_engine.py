"""The fault engine's decisions: determinism, scopes, TTL, counts per rule and per idempotency key, token bucket."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from simulators.engine.engine import FaultEngine
from simulators.engine.rules import RuleSpec

SPEC = TypeAdapter(RuleSpec)


def engine(seed: int = 7) -> FaultEngine:
    fault_engine = FaultEngine(seed=seed, journal_size=100)
    fault_engine.clock.freeze(1_800_000_000)
    return fault_engine


def add(fault_engine: FaultEngine, **spec: Any) -> str:
    return fault_engine.add(SPEC.validate_python(spec)).id


def fault(
    fault_engine: FaultEngine, scope: str | None = None, key: str | None = None, path: str = "/v1/x"
) -> str | None:
    return fault_engine.decide("POST", path, scope, "sk", key).fault


def run_sequence(seed: int) -> list[dict[str, Any]]:
    fault_engine = engine(seed)
    add(fault_engine, action={"kind": "status", "status": 503}, probability=0.3)
    add(fault_engine, action={"kind": "latency", "distribution": {"type": "uniform", "min_ms": 1, "max_ms": 9}})
    for index in range(200):
        fault_engine.decide("POST", f"/v1/{index % 3}", "s", "sk", None)
    return [decision.as_dict() for decision in fault_engine.decisions.log("s")]


def test_same_seed_and_requests_give_identical_decision_logs() -> None:
    first, second = run_sequence(7), run_sequence(7)
    assert first == second
    assert any(d["fired"] for d in first)
    assert any(not d["fired"] for d in first)
    assert run_sequence(8) != first


def test_a_scope_draws_the_same_whatever_other_scopes_do() -> None:
    alone, crowded = engine(), engine()
    for fault_engine in (alone, crowded):
        add(fault_engine, action={"kind": "status", "status": 503}, probability=0.5)
    alone_faults = [fault(alone, "a") for _ in range(50)]
    crowded_faults = []
    for _ in range(50):
        fault(crowded, "b")
        crowded_faults.append(fault(crowded, "a"))
        fault(crowded, None)
    assert alone_faults == crowded_faults


def test_a_scoped_rule_touches_only_its_scope() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "status", "status": 503}, scope="mine")
    assert fault(fault_engine, "mine") == "status"
    assert fault(fault_engine, "theirs") is None
    assert fault(fault_engine, None) is None


def test_an_unscoped_rule_touches_every_request() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "reset"})
    assert [fault(fault_engine, scope) for scope in ("a", "b", None)] == ["reset"] * 3


def test_a_rule_removes_itself_when_its_ttl_passes() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "empty"}, ttl_seconds=30)
    fault_engine.clock.advance(29.9)
    assert fault(fault_engine) == "empty"
    fault_engine.clock.advance(0.2)
    assert fault(fault_engine) is None
    assert fault_engine.rules() == []


def test_fail_the_next_n_fires_exactly_n_times() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "status", "status": 500}, times=2)
    assert [fault(fault_engine) for _ in range(4)] == ["status", "status", None, None]
    assert fault_engine.rules() == []


def test_fail_the_first_n_attempts_of_each_idempotency_key() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "status", "status": 503}, first_attempts_per_key=2)
    assert [fault(fault_engine, key="k1") for _ in range(3)] == ["status", "status", None]
    assert [fault(fault_engine, key="k2") for _ in range(3)] == ["status", "status", None]
    assert fault(fault_engine, key=None) is None


def test_route_and_method_select_the_requests() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "hang"}, route="/v1/charges/*", method="GET")
    assert fault_engine.decide("GET", "/v1/charges/ch_1", None, None, None).fault == "hang"
    assert fault_engine.decide("POST", "/v1/charges/ch_1", None, None, None).fault is None
    assert fault_engine.decide("GET", "/v1/refunds/re_1", None, None, None).fault is None


def test_probability_fires_about_that_often() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "status", "status": 503}, probability=0.1)
    fired = sum(fault(fault_engine) is not None for _ in range(5000))
    assert 400 < fired < 600


def test_latency_rules_add_up_per_phase_and_do_not_stop_a_terminal_fault() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "latency", "distribution": {"type": "fixed", "ms": 30}})
    add(fault_engine, action={"kind": "latency", "distribution": {"type": "fixed", "ms": 5}, "phase": "after"})
    add(fault_engine, action={"kind": "malformed"})
    verdict = fault_engine.decide("POST", "/v1/x", None, None, None)
    assert verdict.delay_ms == {"before": 30, "processing": 0, "after": 5}
    assert verdict.fault == "malformed"


def test_rate_limit_allows_the_burst_then_answers_429_until_tokens_return() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "rate_limit", "rate": 2, "burst": 3})
    statuses = [fault_engine.decide("POST", "/v1/x", None, "key-a", None) for _ in range(4)]
    assert [verdict.fault for verdict in statuses] == [None, None, None, "status"]
    limited = statuses[-1]
    assert limited.action.status == 429
    assert limited.action.retry_after == 1
    assert limited.headers == {"RateLimit-Policy": '"sim";q=3;w=2', "RateLimit": '"sim";r=0;t=1'}
    assert fault_engine.decide("POST", "/v1/x", None, "key-b", None).fault is None  # another key, another bucket
    fault_engine.clock.advance(0.5)
    assert fault_engine.decide("POST", "/v1/x", None, "key-a", None).fault is None


@pytest.mark.parametrize(
    "spec",
    [
        {"action": {"kind": "status", "status": 99}},
        {"action": {"kind": "teleport"}},
        {"action": {"kind": "reset"}, "probability": 1.5},
        {"action": {"kind": "reset"}, "route": "v1/no-slash"},
        {"action": {"kind": "rate_limit", "rate": 1, "burst": 1}, "times": 2},
        {"action": {"kind": "reset"}, "surprise": True},
    ],
)
def test_malformed_rules_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        SPEC.validate_python(spec)

"""The fault engine's decision log, entry by entry, and what a reset, a removal and a scope's own clock do to the
engine's state: the log is how a failed chaos run is replayed, so every field must be the one that decided."""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from pydantic import TypeAdapter

from simulators.engine.decisions import MAX_DECISIONS_PER_SCOPE, Decision, Decisions
from simulators.engine.engine import FaultEngine, rate_limited_body
from simulators.engine.journal import JournalFilter
from simulators.engine.rules import RuleSpec

SPEC = TypeAdapter(RuleSpec)
NOW = 1_800_000_000.0


def engine(seed: int = 7, journal_size: int = 100) -> FaultEngine:
    fault_engine = FaultEngine(seed=seed, journal_size=journal_size)
    fault_engine.clock.freeze(NOW)
    return fault_engine


def add(fault_engine: FaultEngine, **spec: Any) -> str:
    return fault_engine.add(SPEC.validate_python(spec)).id


def log(fault_engine: FaultEngine, scope: str | None) -> list[dict[str, Any]]:
    return [decision.as_dict() for decision in fault_engine.decisions.log(scope)]


def test_each_rule_considered_is_logged_with_the_request_number_the_draw_and_the_value() -> None:
    fault_engine = engine()
    skipped = add(fault_engine, action={"kind": "hang"}, route="/v1/refunds", scope="s")
    coin = add(fault_engine, action={"kind": "status", "status": 503}, probability=0.5, scope="s")
    slow = add(fault_engine, action={"kind": "latency", "distribution": {"type": "uniform", "min_ms": 1, "max_ms": 9}},
               scope="s")  # fmt: skip
    rng = random.Random("7:s")
    expected = []
    for request, (method, path) in enumerate([("POST", "/v1/charges"), ("GET", "/v1/charges/ch_1")] * 4, start=1):
        verdict = fault_engine.decide(method, path, "s", "sk", None)
        draw = rng.random()
        expected.append(dict(request=request, method=method, path=path, rule=coin, kind="status", fired=draw < 0.5,
                             draw=draw, value=None))  # fmt: skip
        if draw < 0.5:
            assert verdict.fault == "status"
            continue  # a terminal fault ends the request's decisions
        latency = rng.uniform(1, 9)
        expected.append(dict(request=request, method=method, path=path, rule=slow, kind="latency", fired=True,
                             draw=None, value=latency))  # fmt: skip
        assert verdict.fault is None
        assert verdict.delay_ms["before"] == latency
    assert log(fault_engine, "s") == expected
    assert {entry["fired"] for entry in expected[::2]} == {True, False}
    assert all(entry["rule"] != skipped for entry in expected)


def test_a_rate_limited_request_is_logged_as_fired_and_stops_there() -> None:
    fault_engine = engine()
    limit = add(fault_engine, action={"kind": "rate_limit", "rate": 1, "burst": 1}, scope="s")
    add(fault_engine, action={"kind": "status", "status": 500}, scope="s")
    assert fault_engine.decide("POST", "/v1/charges", "s", "sk", None).action.status == 500
    verdict = fault_engine.decide("PUT", "/v1/other", "s", "sk", None)
    assert verdict.action.status == 429
    assert verdict.action.body == rate_limited_body(1)
    assert verdict.action.body["detail"] == "Rate limit exceeded; retry after 1 s."
    assert log(fault_engine, "s")[-1] == dict(request=2, method="PUT", path="/v1/other", rule=limit,
                                               kind="rate_limit", fired=True, draw=None, value=None)  # fmt: skip


def test_a_certain_rule_draws_nothing_and_leaves_the_scopes_sequence_alone() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "latency", "distribution": {"type": "fixed", "ms": 4}}, probability=1)
    coin = add(fault_engine, action={"kind": "empty"}, probability=0.5)
    fault_engine.decide("POST", "/v1/x", None, None, None)
    certain, drawn = log(fault_engine, None)
    assert certain["draw"] is None
    assert certain["value"] == 4
    assert (drawn["rule"], drawn["draw"]) == (coin, random.Random("7:").random())


def test_latency_rules_of_one_phase_add_up() -> None:
    fault_engine = engine()
    for ms in (30, 12):
        add(fault_engine, action={"kind": "latency", "distribution": {"type": "fixed", "ms": ms}})
    assert fault_engine.decide("POST", "/v1/x", None, None, None).delay_ms == {"before": 42, "processing": 0,
                                                                                "after": 0}  # fmt: skip


def test_scopes_draw_from_generators_of_their_own() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "latency", "distribution": {"type": "uniform", "min_ms": 0, "max_ms": 1000}})
    delays = {scope: [fault_engine.decide("POST", "/", scope, None, None).delay_ms["before"] for _ in range(5)]
              for scope in ("a", "b", None)}  # fmt: skip
    assert delays["a"] != delays["b"] != delays[None]
    alone = engine()
    add(alone, action={"kind": "latency", "distribution": {"type": "uniform", "min_ms": 0, "max_ms": 1000}})
    assert [alone.decide("POST", "/", "a", None, None).delay_ms["before"] for _ in range(5)] == delays["a"]


def test_rule_ids_are_numbered_from_one_per_scope_and_named_by_the_scope() -> None:
    fault_engine = engine()
    assert add(fault_engine, action={"kind": "reset"}) == "rule_1"
    assert add(fault_engine, action={"kind": "reset"}) == "rule_2"
    scoped = add(fault_engine, action={"kind": "reset"}, scope="s")
    assert scoped == f"rule_1_{hashlib.sha256(b's').hexdigest()[:8]}"
    assert re.fullmatch(r"rule_1_[0-9a-f]{8}", scoped)


def test_a_rule_lives_exactly_its_ttl_on_its_scopes_clock() -> None:
    fault_engine = engine()
    fault_engine.clock.advance(1000, scope="s")
    add(fault_engine, action={"kind": "reset"}, scope="s", ttl_seconds=10)
    assert fault_engine.decide("POST", "/", "s", None, None).fault == "reset"
    fault_engine.clock.advance(10, scope="s")
    assert fault_engine.decide("POST", "/", "s", None, None).fault is None
    assert fault_engine.rules() == []


def test_a_scopes_bucket_refills_on_that_scopes_clock() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "rate_limit", "rate": 1, "burst": 1}, scope="s")
    assert fault_engine.decide("POST", "/", "s", "sk", None).fault is None
    assert fault_engine.decide("POST", "/", "s", "sk", None).fault == "status"
    fault_engine.clock.advance(1, scope="s")
    assert fault_engine.decide("POST", "/", "s", "sk", None).fault is None


def test_a_rule_added_again_after_a_scope_reset_starts_with_a_full_bucket_and_fresh_attempts() -> None:
    fault_engine = engine()
    for _ in range(2):
        limit = add(fault_engine, action={"kind": "rate_limit", "rate": 0.001, "burst": 1}, scope="s")
        first = add(fault_engine, action={"kind": "status", "status": 503}, first_attempts_per_key=1, scope="s")
        assert fault_engine.decide("POST", "/", "s", "sk", "key-1").action.status == 503  # the first attempt
        assert fault_engine.decide("POST", "/", "s", "sk", "key-1").action.status == 429
        assert (limit, first) == ("rule_1_" + limit[7:], "rule_2_" + first[7:])  # the same ids, the second time
        fault_engine.reset("s")


def test_removing_a_rule_says_whether_it_was_there_and_forgets_its_bucket() -> None:
    fault_engine = engine()
    kept = add(fault_engine, action={"kind": "rate_limit", "rate": 0.001, "burst": 1})
    gone = add(fault_engine, action={"kind": "rate_limit", "rate": 0.001, "burst": 1}, route="/other")
    fault_engine.decide("POST", "/", None, "sk", None)
    assert fault_engine.remove(gone) is True
    assert fault_engine.remove(gone) is False
    assert fault_engine.decide("POST", "/", None, "sk", None).action.status == 429  # the kept rule's bucket stays
    assert [rule.id for rule in fault_engine.rules()] == [kept]


def test_a_full_reset_takes_a_new_seed_and_forgets_every_scope() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "empty"}, probability=0.5)
    fault_engine.decide("POST", "/", "s", None, None)
    fault_engine.clock.advance(50, scope="s")
    fault_engine.journal.record(time=0, method="POST", path="/", query="", headers={}, body=b"", scope="s")
    fault_engine.reset(seed=9)
    assert fault_engine.decisions.seed == 9
    assert fault_engine.decisions.log("s") == []
    assert fault_engine.journal.count(JournalFilter()) == 0
    assert not fault_engine.clock.frozen("s")
    add(fault_engine, action={"kind": "empty"}, probability=0.5)
    fault_engine.decide("POST", "/", "s", None, None)
    assert log(fault_engine, "s")[0]["draw"] == random.Random("9:s").random()
    fault_engine.reset()
    assert fault_engine.decisions.seed == 9  # no seed given: the seed stays


def test_a_scope_reset_leaves_other_scopes_their_journal_and_takes_its_clock_back() -> None:
    fault_engine = engine()
    for scope in ("a", "b"):
        fault_engine.journal.record(time=0, method="POST", path="/", query="", headers={}, body=b"", scope=scope)
    fault_engine.clock.advance(500, scope="a")
    fault_engine.reset("a")
    assert [entry.scope for entry in fault_engine.journal.query(JournalFilter())] == ["b"]
    assert fault_engine.clock.now("a") == NOW


def test_the_journal_holds_the_size_the_engine_was_given() -> None:
    fault_engine = engine(journal_size=3)
    for index in range(5):
        fault_engine.journal.record(time=index, method="GET", path="/", query="", headers={}, body=b"", scope=None)
    assert [entry.time for entry in fault_engine.journal.query(JournalFilter())] == [2, 3, 4]


def test_the_log_of_a_scope_keeps_the_newest_decisions_and_an_unknown_scope_has_none() -> None:
    decisions = Decisions(seed=1)
    assert decisions.log("never") == []
    for request in range(MAX_DECISIONS_PER_SCOPE + 2):
        decisions.record("s", Decision(request, "GET", "/", "rule_1", "empty", False))
    kept = decisions.log("s")
    assert (len(kept), kept[0].request) == (MAX_DECISIONS_PER_SCOPE, 2)


def test_resetting_one_scopes_decisions_keeps_the_others_and_the_seed() -> None:
    decisions = Decisions(seed=1)
    for scope in ("a", "b"):
        decisions.next_request(scope)
        decisions.record(scope, Decision(1, "GET", "/", "rule_1", "empty", False))
    decisions.reset("a")
    assert (decisions.log("a"), len(decisions.log("b")), decisions.seed) == ([], 1, 1)
    assert (decisions.next_request("a"), decisions.next_request("b")) == (1, 2)


def test_removing_a_rule_forgets_its_attempts_and_no_other_rules() -> None:
    fault_engine = engine()
    add(fault_engine, action={"kind": "status", "status": 503}, first_attempts_per_key=1, route="/a")
    gone = add(fault_engine, action={"kind": "status", "status": 503}, first_attempts_per_key=1, route="/b")
    assert [fault_engine.decide("POST", path, None, "sk", "key-1").fault for path in ("/a", "/b")] == ["status"] * 2
    fault_engine.remove(gone)
    assert fault_engine.decide("POST", "/a", None, "sk", "key-1").fault is None  # its first attempt is remembered

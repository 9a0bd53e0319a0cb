"""The fault engine: for each request, which rules fire, in order, drawing from the scope's seeded generator."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from simulators.engine.clock import SimClock
from simulators.engine.decisions import Decision, Decisions
from simulators.engine.journal import Journal
from simulators.engine.problems import problem_body
from simulators.engine.ratelimit import TokenBucket
from simulators.engine.rules import TERMINAL_AFTER, TERMINAL_BEFORE, Latency, RateLimit, Rule, RuleSpec, Status


@dataclass(slots=True)
class Verdict:
    """What the middleware must do to one request."""

    delay_ms: dict[str, float] = field(default_factory=lambda: {"before": 0.0, "processing": 0.0, "after": 0.0})
    action: Any = None  # a terminal action (rules.TERMINAL_BEFORE | TERMINAL_AFTER), or None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def fault(self) -> str | None:
        return None if self.action is None else str(self.action.kind)


NO_FAULT = Verdict()


class FaultEngine:
    def __init__(self, *, seed: int, journal_size: int, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock()
        self.decisions = Decisions(seed)
        self.journal = Journal(journal_size)
        self._rules: dict[str, Rule] = {}
        self._ids: defaultdict[str | None, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}  # (rule, scope, API key)
        self._attempts: defaultdict[tuple[str, str], int] = defaultdict(int)

    # rules

    def add(self, spec: RuleSpec) -> Rule:
        now = self.clock.now(spec.scope)
        rule = Rule(
            **spec.model_dump(),
            id=self._next_id(spec.scope),
            created_at=now,
            expires_at=None if spec.ttl_seconds is None else now + spec.ttl_seconds,
        )
        self._rules[rule.id] = rule
        return rule

    def remove(self, rule_id: str) -> bool:
        self._forget(rule_id)
        return self._rules.pop(rule_id, None) is not None

    def rules(self, scope: str | None = None) -> list[Rule]:
        self._expire()
        return [rule for rule in self._rules.values() if scope is None or rule.scope == scope]

    def clear(self, scope: str | None = None) -> None:
        for rule in self.rules(scope):
            self.remove(rule.id)

    def reset(self, scope: str | None = None, seed: int | None = None) -> None:
        """Rules, journal and decisions of one scope; or, with no scope, of all and the clock too."""
        if scope is None:
            self._rules.clear()
            self._buckets.clear()
            self._attempts.clear()
            self._ids.clear()
            self.journal.clear()
            self.decisions.reset(everything=True, seed=seed)
            self.clock.reset()
        else:
            self.clear(scope)
            self.clock.reset(scope)
            self._ids.pop(scope, None)
            self.journal.clear(scope)
            self.decisions.reset(scope)

    def _next_id(self, scope: str | None) -> str:
        """Numbered per scope, so that a scope's decision log reads the same on every run."""
        number = next(self._ids[scope])
        if scope is None:
            return f"rule_{number}"
        return f"rule_{number}_{hashlib.sha256(scope.encode()).hexdigest()[:8]}"

    def _forget(self, rule_id: str) -> None:
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if key[0] != rule_id}
        for attempt in [attempt for attempt in self._attempts if attempt[0] == rule_id]:
            del self._attempts[attempt]

    def _expire(self) -> None:
        expired = [
            rule
            for rule in self._rules.values()
            if rule.expires_at is not None and rule.expires_at <= self.clock.now(rule.scope)
        ]
        for rule in expired:
            self.remove(rule.id)

    # decisions

    def decide(
        self, method: str, path: str, scope: str | None, api_key: str | None, idempotency_key: str | None
    ) -> Verdict:
        if not self._rules:
            return NO_FAULT
        self._expire()
        request = self.decisions.next_request(scope)
        verdict = Verdict()
        for rule in list(self._rules.values()):
            if not rule.matches(method, path, scope):
                continue
            action = rule.action
            if isinstance(action, RateLimit):
                if self._rate_limited(rule, action, api_key, scope, verdict):
                    self.decisions.record(scope, Decision(request, method, path, rule.id, action.kind, True))
                    return verdict
                continue
            fired, draw = self._fires(rule, idempotency_key, scope)
            value = None
            if fired and isinstance(action, Latency):
                value = action.distribution.sample(self.decisions.rng(scope))
                verdict.delay_ms[action.phase] += value
            self.decisions.record(scope, Decision(request, method, path, rule.id, action.kind, fired, draw, value))
            if not fired:
                continue
            rule.fired += 1
            if rule.exhausted:
                self.remove(rule.id)
            if action.kind in TERMINAL_BEFORE or action.kind in TERMINAL_AFTER:
                verdict.action = action
                break
        return verdict

    def _fires(self, rule: Rule, idempotency_key: str | None, scope: str | None) -> tuple[bool, float | None]:
        if rule.first_attempts_per_key is not None:
            if idempotency_key is None:
                return False, None
            attempt = self._attempts[(rule.id, idempotency_key)]
            self._attempts[(rule.id, idempotency_key)] = attempt + 1
            if attempt >= rule.first_attempts_per_key:
                return False, None
        if rule.probability >= 1:
            return True, None
        draw = self.decisions.rng(scope).random()
        return draw < rule.probability, draw

    def _rate_limited(
        self, rule: Rule, action: RateLimit, api_key: str | None, scope: str | None, verdict: Verdict
    ) -> bool:
        now = self.clock.now(scope)
        key = (rule.id, scope or "", api_key or "")
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(action.rate, action.burst, now)
        allowed = bucket.take(now)
        verdict.headers.update(bucket.headers(now))
        if allowed:
            return False
        retry_after = max(1, math.ceil(bucket.seconds_until_available(now)))
        verdict.action = Status(status=429, retry_after=retry_after, body=rate_limited_body(retry_after))
        return True


def rate_limited_body(retry_after: float) -> dict[str, Any]:
    detail = f"Rate limit exceeded; retry after {retry_after:g} s."
    return problem_body(429, "Too Many Requests", detail, slug="rate-limited")


__all__ = ["FaultEngine", "Journal", "Verdict"]

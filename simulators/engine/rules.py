"""Fault rules: what to do to which requests, how often, for whom and for how long."""

from __future__ import annotations

import re
from fnmatch import translate
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulators.engine.distributions import Distribution


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Status(_Action):
    """Answer with this status instead of the provider (its effect does not happen)."""

    kind: Literal["status"] = "status"
    status: int = Field(ge=200, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    body: dict[str, Any] | None = None


class Hang(_Action):
    """Never answer: wait until the client gives up, or `seconds` pass, then close the connection."""

    kind: Literal["hang"] = "hang"
    seconds: float = Field(default=300, gt=0, le=3600)


class Reset(_Action):
    """Reset the TCP connection (RST) before the provider acts."""

    kind: Literal["reset"] = "reset"


class Empty(_Action):
    """Close the connection without a byte of response, before the provider acts."""

    kind: Literal["empty"] = "empty"


class Malformed(_Action):
    """The provider acts; its response body arrives cut in half (valid HTTP, invalid JSON)."""

    kind: Literal["malformed"] = "malformed"


class Truncated(_Action):
    """The provider acts; the response promises more bytes than it sends, then the connection closes."""

    kind: Literal["truncated"] = "truncated"


class SlowBody(_Action):
    """The provider acts; its response body is dribbled out over `seconds`."""

    kind: Literal["slow_body"] = "slow_body"
    seconds: float = Field(gt=0, le=600)
    chunks: int = Field(default=10, ge=2, le=1000)


class DropAfterCommit(_Action):
    """The provider acts and commits; the connection is then reset before the response: outcome unknown."""

    kind: Literal["drop_after_commit"] = "drop_after_commit"


class Latency(_Action):
    """Delay the request `before` the provider acts, `processing` while it holds the request's idempotency key
    (payments writes; elsewhere the same as before), or `after` it acted and before the response leaves."""

    kind: Literal["latency"] = "latency"
    distribution: Distribution
    phase: Literal["before", "processing", "after"] = "before"


class RateLimit(_Action):
    """A token bucket per API key (and scope): `rate` tokens a second, at most `burst` saved; empty means 429."""

    kind: Literal["rate_limit"] = "rate_limit"
    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


Action = Annotated[
    Status | Hang | Reset | Empty | Malformed | Truncated | SlowBody | DropAfterCommit | Latency | RateLimit,
    Field(discriminator="kind"),
]
TERMINAL_BEFORE = frozenset({"status", "hang", "reset", "empty"})
TERMINAL_AFTER = frozenset({"malformed", "truncated", "slow_body", "drop_after_commit"})


class RuleSpec(BaseModel):
    """What a client sends to add a rule."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    route: str = Field(default="*", min_length=1, description="Glob on the path: /v1/charges, /v1/charges/*, *")
    method: str | None = Field(default=None, pattern=r"^[A-Z]+$")
    scope: str | None = Field(default=None, min_length=1, max_length=200)
    probability: float = Field(default=1.0, ge=0, le=1)
    times: int | None = Field(default=None, ge=1, description="Fire at most this many times, then remove the rule.")
    first_attempts_per_key: int | None = Field(
        default=None, ge=1, description="Fire only on the first N requests of each Idempotency-Key."
    )
    ttl_seconds: float | None = Field(default=None, gt=0, description="Remove the rule this long after adding it.")

    @field_validator("route")
    @classmethod
    def _absolute(cls, route: str) -> str:
        if route != "*" and not route.startswith("/"):
            raise ValueError("route is '*' or a path glob starting with '/'")
        return route

    @model_validator(mode="after")
    def _rate_limit_fires_always(self) -> RuleSpec:
        if self.action.kind == "rate_limit" and (self.probability != 1 or self.times or self.first_attempts_per_key):
            raise ValueError("a rate_limit rule takes no probability, times or first_attempts_per_key")
        return self


class Rule(RuleSpec):
    """A rule as the engine holds it."""

    id: str
    created_at: float
    expires_at: float | None = None
    fired: int = 0

    @cached_property
    def _path(self) -> re.Pattern[str]:
        return re.compile(translate(self.route))

    def matches(self, method: str, path: str, scope: str | None) -> bool:
        return (
            (self.scope is None or self.scope == scope)
            and (self.method is None or self.method == method)
            and (self.route == "*" or self._path.match(path) is not None)
        )

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

"""Seeded randomness per scope, and the log of every fault decision, so that a run can be replayed.

Each scope draws from its own generator seeded with (seed, scope): the decisions one test sees depend only on
its own requests, however many other scopes share the simulator.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from typing import Any

MAX_DECISIONS_PER_SCOPE = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    request: int  # the n-th request of this scope
    method: str
    path: str
    rule: str
    kind: str
    fired: bool
    draw: float | None = None
    value: float | None = None  # what was drawn for the action, e.g. a latency in ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Decisions:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rngs: dict[str | None, random.Random] = {}
        self._requests: defaultdict[str | None, int] = defaultdict(int)
        self._log: defaultdict[str | None, deque[Decision]] = defaultdict(lambda: deque(maxlen=MAX_DECISIONS_PER_SCOPE))

    def rng(self, scope: str | None) -> random.Random:
        rng = self._rngs.get(scope)
        if rng is None:
            rng = self._rngs[scope] = random.Random(f"{self.seed}:{scope or ''}")  # noqa: S311 - simulation, not crypto
        return rng

    def next_request(self, scope: str | None) -> int:
        self._requests[scope] += 1
        return self._requests[scope]

    def record(self, scope: str | None, decision: Decision) -> None:
        self._log[scope].append(decision)

    def log(self, scope: str | None) -> list[Decision]:
        return list(self._log.get(scope, ()))

    def reset(self, scope: str | None = None, *, everything: bool = False, seed: int | None = None) -> None:
        if everything:
            self.seed = self.seed if seed is None else seed
            self._rngs.clear()
            self._requests.clear()
            self._log.clear()
            return
        self._rngs.pop(scope, None)
        self._requests.pop(scope, None)
        self._log.pop(scope, None)

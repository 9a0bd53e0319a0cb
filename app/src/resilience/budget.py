"""A retry budget (Envoy, the AWS SDK's retry quota): retries may be at most `ratio` of the calls of the last
`window` seconds, with `minimum` allowed whatever the traffic, so a failing provider never sees a retry storm."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RetryBudget:
    def __init__(self, ratio: float, minimum: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self._window = window
        self._clock = clock
        self._calls: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _prune(self, now: float) -> None:
        horizon = now - self._window
        for times in (self._calls, self._retries):
            while times and times[0] < horizon:
                times.popleft()

    def record_call(self) -> None:
        now = self._clock()
        self._prune(now)
        self._calls.append(now)

    def try_spend(self) -> bool:
        """Whether one more retry fits the budget now; if it does, it is counted."""
        now = self._clock()
        self._prune(now)
        if len(self._retries) >= max(self._minimum, self._ratio * len(self._calls)):
            return False
        self._retries.append(now)
        return True

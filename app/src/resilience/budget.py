"""A retry budget (Envoy, the AWS SDK's retry quota): retries may be at most `ratio` of the calls of the last
`window` seconds, with `minimum` allowed whatever the traffic, so a failing provider never sees a retry storm.

Calls and retries are counted in ten slots of a tenth of the window each (a rolling window, as Hystrix and
Resilience4j count): O(1) per call and a few integers in memory, where a timestamp per call would keep thousands
of floats alive and walk them. The window is therefore exact to a tenth of its length.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SLOTS = 10


class RetryBudget:
    def __init__(self, ratio: float, minimum: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self._slot_seconds = window / SLOTS
        self._clock = clock
        self._calls = [0] * SLOTS
        self._retries = [0] * SLOTS
        self._slot = 0  # the slot number (time / slot length) that the counters were last moved to

    def _index(self) -> int:
        """The index of the current slot, after clearing the slots that the window has left behind."""
        slot = int(self._clock() / self._slot_seconds)
        if slot != self._slot:
            self._roll_to(slot)
        return slot % SLOTS

    def _roll_to(self, slot: int) -> None:
        for passed in range(max(self._slot + 1, slot - SLOTS + 1), slot + 1):
            self._calls[passed % SLOTS] = self._retries[passed % SLOTS] = 0
        self._slot = slot

    def record_call(self) -> None:
        self._calls[self._index()] += 1

    def try_spend(self) -> bool:
        """Whether one more retry fits the budget now; if it does, it is counted."""
        index = self._index()
        if sum(self._retries) >= max(self._minimum, self._ratio * sum(self._calls)):
            return False
        self._retries[index] += 1
        return True

"""A token bucket: `rate` tokens a second, at most `burst` kept."""

from __future__ import annotations

import math


class TokenBucket:
    __slots__ = ("_tokens", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @property
    def remaining(self) -> int:
        return int(self._tokens)

    def seconds_until_next(self) -> int:
        return max(1, math.ceil((1 - self._tokens) / self.rate))

    def seconds_until_full(self) -> int:
        return math.ceil((self.burst - self._tokens) / self.rate)

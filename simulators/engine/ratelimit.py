"""A token bucket on the simulator's clock, with IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers)."""

from __future__ import annotations

import math


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def remaining(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens)

    def seconds_until_available(self, now: float) -> float:
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)

    def headers(self, now: float) -> dict[str, str]:
        window = math.ceil(self.burst / self.rate)
        remaining = self.remaining(now)
        reset = math.ceil(self.seconds_until_available(now)) if remaining == 0 else 0
        return {
            "RateLimit-Policy": f'"sim";q={self.burst};w={window}',
            "RateLimit": f'"sim";r={remaining};t={reset}',
        }

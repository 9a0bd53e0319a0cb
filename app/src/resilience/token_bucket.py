"""A token bucket: `rate` tokens a second, at most `burst` kept; and a store of them, one per key."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable


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


class BucketStore:
    """A token bucket per key (a client id, an address); the `max_keys` most recently seen are remembered, and a
    forgotten key starts again with a full bucket. `policy` is the RateLimit-Policy item naming the limit."""

    def __init__(self, name: str, rate: float, burst: int, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.policy = f'"{name}";q={burst};w={max(1, round(burst / rate))}'
        self._name = name
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def bucket(self, key: Hashable, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def state(self, bucket: TokenBucket) -> str:
        """The RateLimit header's item after a request was let through."""
        return f'"{self._name}";r={bucket.remaining};t={bucket.seconds_until_full()}'

    def refusal_headers(self, wait: int) -> dict[str, str]:
        """The headers of a 429: when to retry, and the state of the limit."""
        return {"Retry-After": str(wait), "RateLimit-Policy": self.policy, "RateLimit": f'"{self._name}";r=0;t={wait}'}

"""A token bucket per client address on the public routes that cost the most (Argon2: sign-in, registration).
The per-client limit is keyed by X-Client-Id, which a client chooses for itself: a flood with a new id per request
passes it, but not this.

The address is the peer's, or, when the peer is a proxy listed in TRUSTED_PROXIES, the one it says the request
came from: X-Forwarded-For read from the right, past the trusted hops, to the first address they did not add.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from quart import Request

from app.http.problems import ProblemError
from app.src.resilience.inbound import InboundMetrics
from app.src.resilience.token_bucket import BucketStore

_LIMITED_ATTRIBUTE = "proving_ground_address_limited"
_UNKNOWN = "unknown"  # no peer address (a unix socket): one bucket for all of them
F = TypeVar("F", bound=Callable[..., Any])
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_limited(view: F) -> F:
    """Declares a route limited per client address too (ADDRESS_RATE, ADDRESS_BURST). Put it under the route."""
    setattr(view, _LIMITED_ATTRIBUTE, True)
    return view


def is_address_limited(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _LIMITED_ATTRIBUTE, False))


class ClientAddresses:
    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self._trusted: list[Network] = [ipaddress.ip_network(network) for network in trusted_proxies]

    def _trusted_hop(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        address = peer or _UNKNOWN
        if not self._trusted or not self._trusted_hop(address) or not forwarded_for:
            return address
        for hop in reversed(forwarded_for.split(",")):
            address = hop.strip()[:64]  # what our proxies did not add is the client's to write: keep it short
            if not self._trusted_hop(address):
                break
        return address


class AddressLimiter:
    def __init__(
        self, addresses: ClientAddresses, *, rate: float, burst: int, max_addresses: int, metrics: InboundMetrics
    ) -> None:
        self._addresses = addresses
        self._buckets = BucketStore("per-address", rate, burst, max_addresses)
        self._limited = metrics.address_limited

    def check(self, request: Request) -> None:
        """Take a token for the request's client address, or refuse it with 429."""
        peer = request.scope.get("client")
        address = self._addresses.of(None if peer is None else peer[0], request.headers.get("X-Forwarded-For"))
        now = time.monotonic()
        bucket = self._buckets.bucket(address, now)
        if not bucket.take(now):
            self._limited.inc()
            wait = bucket.seconds_until_next()
            raise ProblemError(
                429,
                f"Too many attempts from this address; retry after {wait} s.",
                slug="rate-limited",
                headers=self._buckets.refusal_headers(wait),
            )

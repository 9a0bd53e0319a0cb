"""Whose address a request is counted under: the peer's, or behind trusted proxies, the first address they did
not add to X-Forwarded-For (read from the right)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.http.address_limits import ClientAddresses
from app.settings import load_settings


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "address"),
    [
        ("198.51.100.7", "203.0.113.9", [], "198.51.100.7"),  # no proxy is trusted: the header is ignored
        ("198.51.100.7", "203.0.113.9", ["10.0.0.0/8"], "198.51.100.7"),  # the peer is no trusted proxy
        ("10.0.0.2", "203.0.113.9, 10.0.0.5", ["10.0.0.0/8"], "203.0.113.9"),
        ("10.0.0.2", "forged-by-the-client, 203.0.113.9", ["10.0.0.0/8"], "203.0.113.9"),
        ("10.0.0.2", "10.0.0.9, 10.0.0.5", ["10.0.0.0/8"], "10.0.0.9"),  # every hop ours: the first of them
        ("10.0.0.2", None, ["10.0.0.0/8"], "10.0.0.2"),
        ("::1", "2001:db8::1", ["::1/128"], "2001:db8::1"),
        (None, "203.0.113.9", ["10.0.0.0/8"], "unknown"),  # a unix socket has no peer address
    ],
)
def test_the_address_a_request_is_counted_under(
    peer: str | None, forwarded_for: str | None, trusted: list[str], address: str
) -> None:
    assert ClientAddresses(trusted).of(peer, forwarded_for) == address


def test_trusted_proxies_must_be_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    assert load_settings(profile="test").trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    monkeypatch.setenv("TRUSTED_PROXIES", "proxy.internal")
    with pytest.raises(ValidationError, match=r"TRUSTED_PROXIES: 'proxy\.internal' is not an address"):
        load_settings(profile="test")

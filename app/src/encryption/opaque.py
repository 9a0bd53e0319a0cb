"""Opaque secrets (refresh tokens, recovery codes): random, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets

REFRESH_TOKEN_BYTES = 32  # 256 bits


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_recovery_codes(count: int = 10) -> list[str]:
    """Codes like `7k3q-9fzt-2mwd`: 60 bits each, easy to read aloud and type."""
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    return ["-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3)) for _ in range(count)]

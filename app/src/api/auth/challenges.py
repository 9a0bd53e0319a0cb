"""The sign-in challenge between the password and the second factor: sealed with the token key ring, bound to the
client that signed in and to the password it was given for (a new password voids it), and answered once (the
repository keeps what was spent until it would have expired)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from app.src.api.common.errors import AuthFailure, UnauthorizedError
from app.src.encryption.opaque import digest
from app.src.encryption.tokens import InvalidTokenError, TokenKeyRing

PURPOSE = "login-challenge"


def password_fingerprint(password_hash: str) -> str:
    """Enough of the password hash to tell it changed, nothing that helps guess it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Challenge:
    user_id: int
    client_id: str
    expires: int
    nonce: str
    password: str  # the fingerprint of the password hash it was given for

    @property
    def digest(self) -> bytes:
        return digest(self.nonce)

    def seal(self, ring: TokenKeyRing) -> str:
        payload = {"uid": self.user_id, "cid": self.client_id, "exp": self.expires, "jti": self.nonce,
                   "pwd": self.password}  # fmt: skip
        return ring.seal(PURPOSE, payload)


def new_challenge(user_id: int, client_id: str, password_hash: str, expires: int) -> Challenge:
    return Challenge(user_id, client_id, expires, os.urandom(16).hex(), password_fingerprint(password_hash))


def open_challenge(ring: TokenKeyRing, token: str, client_id: str, now: float) -> Challenge:
    """The challenge `token` seals, if it is one of ours, for this client, and still in time."""
    try:
        claims: dict[str, Any] = ring.open(PURPOSE, token)
        challenge = Challenge(
            int(claims["uid"]), str(claims["cid"]), int(claims["exp"]), str(claims["jti"]), str(claims["pwd"])
        )
    except (InvalidTokenError, KeyError, TypeError, ValueError):
        raise UnauthorizedError("The sign-in challenge is not valid.", AuthFailure.INVALID_TOKEN) from None
    if challenge.expires < now or challenge.client_id != client_id:
        raise UnauthorizedError("The sign-in challenge has expired; sign in again.", AuthFailure.INVALID_TOKEN)
    return challenge

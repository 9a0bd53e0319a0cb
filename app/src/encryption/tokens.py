"""Sealed tokens: AES-256-GCM under a key ring, `v1.<kid>.<base64url(nonce | ciphertext)>`.

The associated data binds the version, the key id and the token's purpose, so a token sealed for one purpose (an
access token, a TOTP secret at rest) never opens as another. The first key of the ring seals; every key listed
opens, so keys rotate by adding a new one in front and removing the old one once its tokens have expired.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
NONCE_BYTES = 12


class InvalidTokenError(Exception):
    """Malformed, tampered with, sealed for another purpose, or by a key that is not in the ring."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class TokenKeyRing:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._sealing_kid = keys[0][0]
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}

    def seal(self, purpose: str, payload: Mapping[str, Any]) -> str:
        kid = self._sealing_kid
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[kid].encrypt(nonce, orjson.dumps(payload), _associated_data(kid, purpose))
        return f"{VERSION}.{kid}.{_b64encode(nonce + ciphertext)}"

    def open(self, purpose: str, token: str) -> dict[str, Any]:
        version, _, rest = token.partition(".")
        kid, _, sealed = rest.partition(".")
        cipher = self._ciphers.get(kid)
        if version != VERSION or cipher is None or not sealed:
            raise InvalidTokenError("not a token of this service")
        try:
            raw = _b64decode(sealed)
            plaintext = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(kid, purpose))
            payload = orjson.loads(plaintext)
        except (binascii.Error, ValueError, InvalidTag, orjson.JSONDecodeError):
            raise InvalidTokenError("the token does not open") from None
        if not isinstance(payload, dict):
            raise InvalidTokenError("the token does not open")
        return payload


def _associated_data(kid: str, purpose: str) -> bytes:
    return f"{VERSION}|{kid}|{purpose}".encode()

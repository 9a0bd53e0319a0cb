"""Argon2id password hashes (OWASP: m = 19 MiB, t = 2, p = 1) in PHC string format, computed off the event loop
with a bound on how many run and wait at once, so hashing neither stalls the loop nor exhausts memory under load,
and a flood of sign-ins is refused quickly instead of queueing."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from app.src.utils.bounded_threads import BoundedThreads

SALT_BYTES = 16
HASH_BYTES = 32


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_kib: int = 19 * 1024
    iterations: int = 2
    lanes: int = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _kdf(salt: bytes, parameters: Argon2Parameters) -> Argon2id:
    return Argon2id(
        salt=salt,
        length=HASH_BYTES,
        iterations=parameters.iterations,
        lanes=parameters.lanes,
        memory_cost=parameters.memory_kib,
    )


def hash_password(password: str, parameters: Argon2Parameters) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = _kdf(salt, parameters).derive(password.encode())
    return (
        f"$argon2id$v=19$m={parameters.memory_kib},t={parameters.iterations},p={parameters.lanes}"
        f"${_b64(salt)}${_b64(digest)}"
    )


def _parse(encoded: str) -> tuple[Argon2Parameters, bytes, bytes]:
    try:
        _, algorithm, version, settings, salt, digest = encoded.split("$")
        values = dict(item.split("=") for item in settings.split(","))
        parameters = Argon2Parameters(int(values["m"]), int(values["t"]), int(values["p"]))
        if algorithm != "argon2id" or version != "v=19":
            raise ValueError(algorithm)
        return parameters, _unb64(salt), _unb64(digest)
    except (ValueError, KeyError, binascii.Error):
        raise ValueError("not an Argon2id PHC string") from None


def verify_password(password: str, encoded: str) -> bool:
    parameters, salt, expected = _parse(encoded)
    try:
        _kdf(salt, parameters).verify(password.encode(), expected)
    except InvalidKey:
        return False
    return True


class PasswordHasher:
    """Hashing and verifying on threads of its own: at most `max_concurrent` at a time (each takes 19 MiB) and at
    most `max_waiting` more queued; past that, ThreadsBusyError at once (see app/src/utils/bounded_threads.py)."""

    def __init__(
        self, max_concurrent: int, parameters: Argon2Parameters | None = None, *, max_waiting: int = 8
    ) -> None:
        self.parameters = parameters or Argon2Parameters()
        self._threads = BoundedThreads(max_concurrent, max_waiting, name="argon2")
        self._dummy = hash_password(os.urandom(16).hex(), self.parameters)

    async def hash(self, password: str) -> str:
        return await self._threads.run(hash_password, password, self.parameters)

    async def verify(self, password: str, encoded: str | None) -> bool:
        """Whether `password` matches; with no hash (an unknown account) the same work is done against a dummy,
        so the answer takes as long either way."""
        matched = await self._threads.run(verify_password, password, encoded or self._dummy)
        return matched and encoded is not None

    def close(self) -> None:
        self._threads.close()

    def needs_rehash(self, encoded: str) -> bool:
        return _parse(encoded)[0] != self.parameters

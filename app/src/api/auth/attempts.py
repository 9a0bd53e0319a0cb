"""Failed attempts and the lockout they lead to: per subject (an e-mail address, known or not; an account's second
factor), at most `per_burst` failures in `burst_seconds` and `per_hour` in an hour, on the database's clock.

An attempt is counted as a failure before it is checked, and a success takes it back. The lockout check and the
count happen under one lock per subject, so of a hundred attempts sent at once, only those the limits allow get to
the (expensive) check: reading the count first and recording failures after the check let them all through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.src.api.common.errors import LockedError
from app.src.database.auth_repository import AuthRepository
from app.src.encryption.opaque import digest


def login_subject(email: str) -> bytes:
    return digest("login:" + email.lower())


def second_factor_subject(user_id: int) -> bytes:
    return digest(f"totp:{user_id}")


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    per_hour: int = 100
    per_burst: int = 10
    burst_seconds: int = 5 * 60

    async def admit(self, repository: AuthRepository, subject: bytes) -> None:
        """Count one attempt on `subject`, or refuse it with LockedError. Commit the unit of work before the
        attempt is checked, so that the count holds whatever becomes of the check."""
        await repository.lock_subject(subject)
        limits = [(self.per_hour, 3600), (self.per_burst, self.burst_seconds)]
        if wait := await repository.lockout_seconds(subject, limits):
            raise LockedError("Too many failed attempts; try again later.", math.ceil(wait))
        await repository.record_failure(subject)

    @staticmethod
    async def succeeded(repository: AuthRepository, subject: bytes) -> None:
        """The attempt was right: it, and the failures before it, no longer count."""
        await repository.clear_failures(subject)

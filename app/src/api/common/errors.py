"""What a service says went wrong, by kind. Services raise these; the HTTP layer alone decides how each kind is
answered (app/http/problems.py), and a job or script reads the kind, never a status code.

`code` names the exact case for clients (it becomes the problem type); `detail` says it in words. `transient`
separates answers that may change if the same request comes again later (a lockout, an outage) from those that
will not (not found, invalid): an idempotent replay repeats only the latter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pydantic import ValidationError


class DomainError(Exception):
    code = "error"
    transient = False

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One failing field of a request: where (keys and indexes from the top), what is wrong, and a code for it."""

    location: tuple[str | int, ...]
    detail: str
    code: str


# A client fixes its request from the first few problems; a body of 90,000 unknown keys must not get 90,000 back.
REPORTED_PROBLEMS = 20


def field_problems(error: Exception) -> tuple[list[FieldProblem], int]:
    """The first REPORTED_PROBLEMS of pydantic's errors as field problems, and how many there were (any other
    error, which names no field, as one problem with the whole input)."""
    if not isinstance(error, ValidationError):
        return [FieldProblem((), str(error), "invalid")], 1
    items = error.errors(include_url=False, include_input=False, include_context=False)[:REPORTED_PROBLEMS]
    return [FieldProblem(tuple(item["loc"]), item["msg"], item["type"]) for item in items], error.error_count()


class InvalidInputError(DomainError):
    """The request breaks a rule of its own: each failing field is named (the first few, and how many in all)."""

    code = "validation-failed"

    def __init__(self, detail: str, problems: Sequence[FieldProblem], *, total: int | None = None) -> None:
        super().__init__(detail)
        self.problems = tuple(problems)
        self.total = len(self.problems) if total is None else total


class InvalidParametersError(InvalidInputError):
    """The request's query parameters break a rule that spans them, or a cursor is not one we gave: 400, as when
    they do not match their schema."""

    code = "invalid-parameters"


class AuthFailure(Enum):
    """Why: no token where one is needed; a token (access, refresh, sign-in challenge) that is not, or no longer,
    valid; a wrong password or unknown address (one answer for both); a wrong second-factor or recovery code."""

    MISSING_TOKEN = "missing-token"  # noqa: S105 - names of reasons, not secrets
    INVALID_TOKEN = "invalid-token"  # noqa: S105
    INVALID_CREDENTIALS = "invalid-credentials"
    INVALID_CODE = "invalid-code"


# Clients see one code for every token problem: which token failed, and why, is said in the detail.
_CODE_OF_FAILURE = {
    AuthFailure.MISSING_TOKEN: "unauthorized",
    AuthFailure.INVALID_TOKEN: "unauthorized",
    AuthFailure.INVALID_CREDENTIALS: "invalid-credentials",
    AuthFailure.INVALID_CODE: "invalid-code",
}


class UnauthorizedError(DomainError):
    """Who is calling could not be established."""

    def __init__(self, detail: str, reason: AuthFailure) -> None:
        super().__init__(detail, code=_CODE_OF_FAILURE[reason])
        self.reason = reason


class ForbiddenError(DomainError):
    """The caller is known but may not do this."""

    code = "forbidden"


class NotFoundError(DomainError):
    code = "not-found"


class GoneError(DomainError):
    """What was asked for existed once and is no longer there (a used or expired link, a forgotten version)."""

    code = "gone"


class ConflictError(DomainError):
    """The request does not fit the current state of what it acts on."""

    code = "conflict"


class LockedError(DomainError):
    """Too many failed attempts: nothing is tried again for `retry_after` seconds."""

    code = "locked"
    transient = True

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UnavailableError(DomainError):
    """Something the service needs (its database, a provider) cannot do its part now; trying again after
    `retry_after` seconds may succeed."""

    code = "unavailable"
    transient = True

    def __init__(self, detail: str, retry_after: int, *, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class NotReadyError(UnavailableError):
    """The service's own foundations (its database, its schema) are not usable yet: it should get no traffic."""

    code = "not-ready"


class IdempotencyKeyInUseError(ConflictError):
    """A request with this idempotency key is still running: try again after `retry_after` seconds."""

    code = "idempotency-key-in-use"
    transient = True

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class IdempotencyKeyReusedError(DomainError):
    """The idempotency key was first used for another request (other parameters, or another operation)."""

    code = "idempotency-key-reused"

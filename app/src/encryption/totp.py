"""TOTP (RFC 6238) with a window of one step either side, reporting which step matched so a code is used once."""

from __future__ import annotations

import hmac

import pyotp

STEP_SECONDS = 30
WINDOW_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code `code` is, within ±1 step of `now`; None if none is."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):  # isdigit() alone takes any script's digits
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step  # keep looking: the comparison takes the same time whichever step matches
    return found


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)

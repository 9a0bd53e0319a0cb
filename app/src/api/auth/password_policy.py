"""ASVS 5.0 password rules: at least 8 characters, at least 64 allowed, no composition rules, and not one of the
most common passwords (a list shipped with the service)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

MIN_LENGTH = 8
MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def password_problem(password: str, email: str) -> str | None:
    """Why `password` is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"The password must have at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"The password may have at most {MAX_LENGTH} characters."
    if password.lower() in common_passwords():
        return "The password is one of the most common passwords; choose another."
    if password.lower() == email.lower() or password.lower() == email.split("@")[0].lower():
        return "The password must not be the e-mail address."
    return None

"""What the service writes to account holders. Nothing a user typed goes into a message: the client id is
1-64 of [A-Za-z0-9._-] (checked at the edge), and the address is where the message goes, not what it says."""

from __future__ import annotations

import uuid

from app.src.database.outbox import Message

VERIFICATION_MAIL, LOGIN_ALERT = "verification", "login_alert"


def verification_email(user_id: int, email: str, link: str, nonce: str) -> Message:
    body = (
        "Someone, hopefully you, made an account with this address. To confirm the address and be able to sign in, "
        f"open this link within a day:\n\n{link}\n\nIf it was not you, ignore this message: nothing more happens."
    )
    return Message(
        kind=VERIFICATION_MAIL,
        about=f"user:{user_id}",
        payload={"channel": "email", "to": email, "subject": "Confirm your e-mail address", "body": body},
        idempotency_key=f"verification-{user_id}-{nonce}",
    )


def login_alert(user_id: int, email: str, client_id: str, session_id: uuid.UUID) -> Message:
    body = (
        f"Your account was just signed in to from a new client ({client_id}). If this was not you, change your "
        "password and sign out everywhere."
    )
    return Message(
        kind=LOGIN_ALERT,
        about=f"user:{user_id}",
        payload={"channel": "email", "to": email, "subject": "New sign-in to your account", "body": body},
        idempotency_key=f"login-alert-{session_id}",
    )

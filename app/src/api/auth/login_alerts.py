"""After a sign-in from a client the account has not used before, an e-mail to its owner. It runs in the
background: the sign-in neither waits for it nor fails with it."""

from __future__ import annotations

import asyncio

from app.src.api.auth.service import LoginAlert
from app.src.api.common.providers import EmailSender, ProviderError
from app.src.utils.logs import module_logger

_log = module_logger("login_alerts")


class LoginAlerts:
    def __init__(self, email: EmailSender | None) -> None:
        self._email = email
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, alert: LoginAlert) -> None:
        if self._email is None:
            _log.warning("no notify provider configured; login alert not sent", session_id=str(alert.session_id))
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self._email, alert))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, email: EmailSender, alert: LoginAlert) -> None:
        body = (
            f"Hello {alert.display_name}, your account was just signed in to from a new client "
            f"({alert.client_id}). If this was not you, change your password and sign out everywhere."
        )
        try:
            await email.send_email(
                alert.email,
                "New sign-in to your account",
                body,
                idempotency_key=f"login-alert-{alert.session_id}",
            )
        except ProviderError as error:
            _log.warning("login alert not delivered", error=type(error).__name__, session_id=str(alert.session_id))

    async def drain(self) -> None:
        """Let the alerts in flight finish (they are bounded by the notify client's deadline)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

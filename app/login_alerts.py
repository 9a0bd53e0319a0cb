"""After a sign-in from a client the account has not used before, an e-mail through the notify provider. It runs
in the background: the sign-in neither waits for it nor fails with it."""

from __future__ import annotations

import asyncio

from .logs import module_logger
from .src.api.auth.service import LoginAlert
from .src.api.common.providers import ProviderError
from .src.resilience.client import ProviderClient

_log = module_logger("login_alerts")


class LoginAlerts:
    def __init__(self, notify: ProviderClient | None) -> None:
        self._notify = notify
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, alert: LoginAlert) -> None:
        if self._notify is None:
            _log.warning("no notify provider configured; login alert not sent", session_id=str(alert.session_id))
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self._notify, alert))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, notify: ProviderClient, alert: LoginAlert) -> None:
        message = {
            "channel": "email",
            "to": alert.email,
            "subject": "New sign-in to your account",
            "body": f"Hello {alert.display_name}, your account was just signed in to from a new client "
            f"({alert.client_id}). If this was not you, change your password and sign out everywhere.",
        }
        try:
            await notify.request(
                "POST", "/v1/messages", json=message, idempotency_key=f"login-alert-{alert.session_id}"
            )
        except ProviderError as error:
            _log.warning("login alert not delivered", error=type(error).__name__, session_id=str(alert.session_id))

    async def drain(self) -> None:
        """Let the alerts in flight finish (they are bounded by the notify client's deadline)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

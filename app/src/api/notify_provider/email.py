"""E-mail through the notify provider (`POST /v1/messages`), over the resilient provider client."""

from __future__ import annotations

from app.src.resilience.client import ProviderClient


class NotifyEmailSender:
    def __init__(self, notify: ProviderClient) -> None:
        self._notify = notify

    async def send_email(self, to: str, subject: str, body: str, *, idempotency_key: str) -> None:
        message = {"channel": "email", "to": to, "subject": subject, "body": body}
        await self._notify.request("POST", "/v1/messages", json=message, idempotency_key=idempotency_key)

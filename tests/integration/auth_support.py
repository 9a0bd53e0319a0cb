"""The service with auth configured for tests, and the steps of a user's life in it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from quart import Quart
from quart.typing import TestClientProtocol as HttpClient

from app.http.services import services_of
from app.settings import Settings

OLD_KEY = ("k1", bytes(range(32)))
NEW_KEY = ("k2", bytes(range(32, 64)))
PASSWORD = "a long passphrase of mine"


def key_ring_setting(*keys: tuple[str, bytes]) -> SecretStr:
    return SecretStr(",".join(f"{kid}:{base64.urlsafe_b64encode(key).decode()}" for kid, key in keys))


@dataclass
class User:
    client: HttpClient
    email: str
    client_id: str = "web-1"
    password: str = PASSWORD

    def headers(self, token: str | None = None, client_id: str | None = None) -> dict[str, str]:
        headers = {"X-Client-Id": client_id or self.client_id}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def register(self, password: str | None = None, *, confirm: bool = True) -> Any:
        """Register, and (unless told not to) open the link the service sent to confirm the address."""
        body = {"email": self.email, "password": password or self.password, "display_name": "Ada"}
        response = await self.client.post("/api/auth/register", json=body, headers=self.headers())
        if confirm and response.status_code == 202 and (link := await latest_link(self.client, self.email)):
            await self.client.get(link)
        return response

    async def login(self, password: str | None = None, client_id: str | None = None) -> Any:
        body = {"email": self.email, "password": password or self.password}
        return await self.client.post("/api/auth/login", json=body, headers=self.headers(client_id=client_id))

    async def tokens(self, client_id: str | None = None) -> dict[str, Any]:
        response = await self.login(client_id=client_id)
        assert response.status_code == 200, await response.get_data(as_text=True)
        tokens: dict[str, Any] = await response.get_json()
        return tokens

    async def get(self, path: str, token: str) -> Any:
        return await self.client.get(path, headers=self.headers(token))

    async def post(self, path: str, token: str | None, body: Any = None) -> Any:
        return await self.client.post(path, json=body if body is not None else {}, headers=self.headers(token))


def auth_settings(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "token_keys": key_ring_setting(NEW_KEY, OLD_KEY),
        "client_rate": None,  # tests sign in often and fast; the limits have tests of their own
        "address_rate": None,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


@asynccontextmanager
async def serve(app: Quart) -> AsyncIterator[HttpClient]:
    """The app started (and stopped when the block ends, however it ends), and a client of it."""
    async with app.test_app() as serving:
        yield serving.test_client()


async def latest_link(client: HttpClient, email: str) -> str | None:
    """The path of the newest confirmation link written to the outbox for `email` (what the mail would carry)."""
    database = services_of(client.app).database
    async with database.reading() as connection:
        payload = await connection.fetchval(
            "SELECT payload FROM outbox WHERE kind = 'verification' AND payload->>'to' = $1 ORDER BY id DESC LIMIT 1",
            email,
        )
    if payload is None:
        return None
    found = re.search(r"https?://[^/\s]+(/links/verify-email\?token=\S+)", json.loads(payload)["body"])
    return None if found is None else found.group(1)

"""Floods of sign-ins: limited per client address whatever X-Client-Id they claim, and refused at once with 503
when more passwords wait to be checked than the hashing queue holds."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.settings import Settings
from tests.integration.auth_support import PASSWORD, auth_settings, serve

WRONG = {"email": "nobody@example.org", "password": "not a passphrase of anyone"}


async def sign_in(client: HttpClient, address: str, forwarded_for: str | None = None) -> Any:
    headers = {"X-Client-Id": f"flood-{uuid.uuid4().hex[:8]}"}  # a new client id every time
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return await client.post("/api/auth/login", json=WRONG, headers=headers, scope_base={"client": (address, 40000)})


@pytest.mark.requirement("NFR-4")
async def test_sign_ins_from_one_address_are_limited_whatever_client_id_they_claim(settings: Settings) -> None:
    configured = auth_settings(settings, address_rate=0.01, address_burst=3)
    async with serve(create_app(configured)) as client:
        statuses = [(await sign_in(client, "198.51.100.7")).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        refused = await sign_in(client, "198.51.100.7")
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Policy"] == '"per-address";q=3;w=300'
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await refused.get_json())["type"] == "urn:proving-ground:problem:rate-limited"
        assert (await sign_in(client, "198.51.100.8")).status_code == 401  # another address is not touched


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_limited(settings: Settings) -> None:
    configured = auth_settings(settings, address_rate=0.01, address_burst=1, trusted_proxies=("10.0.0.0/8",))
    async with serve(create_app(configured)) as client:
        assert (await sign_in(client, "10.0.0.2", "203.0.113.9, 10.0.0.1")).status_code == 401
        assert (await sign_in(client, "10.0.0.2", "203.0.113.9, 10.0.0.1")).status_code == 429
        assert (await sign_in(client, "10.0.0.3", "203.0.113.10")).status_code == 401
        # A peer that is not a trusted proxy cannot choose its address by writing the header.
        assert (await sign_in(client, "198.51.100.7", "203.0.113.11")).status_code == 401
        assert (await sign_in(client, "198.51.100.7", "203.0.113.12")).status_code == 429


async def test_more_sign_ins_than_the_hashing_queue_holds_are_refused_at_once_with_503(settings: Settings) -> None:
    configured = auth_settings(settings, password_hash_concurrency=1, password_hash_queue=1)
    async with serve(create_app(configured)) as client:
        bodies = [{"email": f"flood-{index}@example.org", "password": PASSWORD} for index in range(10)]
        answers = await asyncio.gather(
            *(client.post("/api/auth/login", json=body, headers={"X-Client-Id": "web"}) for body in bodies)
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(503) >= 1
    assert statuses.count(401) >= 2  # one hashing, one waiting: both answered
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert refused.headers["Retry-After"] == "1"
    problem = await refused.get_json()
    assert (problem["type"], problem["detail"]) == (
        "urn:proving-ground:problem:overloaded",
        "Too many passwords are being checked at once; try again in a moment.",
    )

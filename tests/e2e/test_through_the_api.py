"""End to end, over HTTP only, as a client of a deployed service: sign in, an authenticated read, a catalog page
and a payment with its replay. Against `API_URL` when it is set (the compose topology's `api` container; an
account is made in its database, `API_DB_URI`, as an operator would), else against `python -m app serve` started
here with simulators of its own and the catalog mirrored once."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from simulators.server import BackgroundSimulator, build
from tests.support.accounts import PASSWORD, make_account
from tests.support.catalog import catalog_simulator
from tests.support.processes import clean_environment, free_port, serving_process
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(database_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The API's base URL, and the address of an account on it."""
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.org"
    cwd = tmp_path_factory.mktemp("e2e")
    if (url := os.environ.get("API_URL")) is not None:
        make_account(os.environ["API_DB_URI"], email, cwd)
        yield url.rstrip("/"), email
        return
    make_account(database_uri, email, cwd)
    with catalog_simulator() as catalog_url, BackgroundSimulator(build("payments", {"seed": 12, "rules": []})) as pay:
        port = free_port()
        environment = clean_environment(
            PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port), LOG_LEVEL="WARNING",
            CATALOG_URL=catalog_url, CATALOG_API_KEY=API_KEY, PAYMENTS_URL=pay.url, PAYMENTS_API_KEY=API_KEY,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "app", "jobs", "run", "catalog_sync"], check=True, capture_output=True,
            timeout=60, env=environment, cwd=cwd,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with serving_process(environment, cwd, base):
            yield base, email


def _tls() -> ssl.SSLContext | bool:
    """The deployment's certificate when API_CA_FILE names it: its chain and its name checked."""
    if (ca_file := os.environ.get("API_CA_FILE")) is None:
        return True
    return ssl.create_default_context(cafile=ca_file)


async def test_sign_in_read_browse_and_pay_once(api: tuple[str, str]) -> None:
    base, email = api
    client = {"X-Client-Id": "e2e"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_tls())) as http:
        async with http.post(
            f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}, headers=client
        ) as r:
            assert r.status == 200, await r.text()
            signed_in = client | {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        async with http.get(f"{base}/api/auth/me", headers=signed_in) as r:
            assert (r.status, (await r.json())["email"]) == (200, email)
        page = await catalog_page(http, f"{base}/api/catalog/items?limit=5", client)
        assert len(page["items"]) == 5

        payment = {"amount": 1999, "currency": "eur", "customer": "cus_e2e", "description": "end to end"}
        keyed = signed_in | {"Idempotency-Key": uuid.uuid4().hex}
        async with http.post(f"{base}/api/billing/payments", json=payment, headers=keyed) as r:
            assert r.status == 201, await r.text()
            first = await r.read()
        async with http.post(f"{base}/api/billing/payments", json=payment, headers=keyed) as r:
            assert (r.status, r.headers["Idempotent-Replayed"], await r.read()) == (201, "true", first)


async def catalog_page(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """A page, once the deployment's worker has mirrored the catalog (a fresh topology syncs as its worker starts:
    until then the answer is 503 catalog-not-synced, which is polled)."""
    async with asyncio.timeout(60):
        while True:
            async with http.get(url, headers=headers) as response:
                if response.status != 503:
                    assert response.status == 200, await response.text()
                    assert int(response.headers["Catalog-Age"]) >= 0
                    page: dict[str, Any] = await response.json()
                    return page
            await asyncio.sleep(0.5)

"""The catalog as tests see it: a catalog simulator of the test's own, what its feed holds (the truth a sync must
reach), and a whole listing paged through the API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from quart.typing import TestClientProtocol as HttpClient

from app.http.services import services_of
from simulators.server import BackgroundSimulator, build
from tests.support.simulator_fixtures import API_KEY

CLIENT = {"X-Client-Id": "catalog-test"}


@contextmanager
def catalog_simulator(**config: Any) -> Iterator[str]:
    """A catalog simulator whose products change only when the test says (or moves its clock, if `config` sets
    change_every_seconds), with no rate limit."""
    settings = {"seed": 5, "initial_products": 45, "change_every_seconds": 0, "rules": [], **config}
    with BackgroundSimulator(build("catalog", settings)) as running:
        yield running.url


async def feed_truth(url: str) -> dict[str, dict[str, Any]]:
    """Every product the simulator's feed holds now, by id."""
    products: dict[str, dict[str, Any]] = {}
    cursor = None
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        while True:
            params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
            async with http.get(f"{url}/v1/products", params=params) as response:
                assert response.status == 200
                page = await response.json()
            products.update((product["id"], product) for product in page["data"])
            if (cursor := page["next_cursor"]) is None:
                return products


async def list_all(client: HttpClient, **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    """Every item of one listing, following next_cursor; and the versions its pages said they read."""
    items: list[dict[str, Any]] = []
    versions: set[int] = set()
    query = {key: str(value) for key, value in params.items()}
    for _ in range(1000):
        response = await client.get("/api/catalog/items", query_string=query, headers=CLIENT)
        assert response.status_code == 200, await response.get_data(as_text=True)
        page = await response.get_json()
        items.extend(page["items"])
        versions.add(page["version"])
        if page["next_cursor"] is None:
            return items, versions
        query = {**query, "cursor": page["next_cursor"]}
    raise AssertionError("the listing did not end within 1000 pages")


async def sync_and_see(client: HttpClient, within: float = 10) -> int:
    """Run the catalog_sync job's work once, then wait until this API process serves what it committed (its
    mirror hears of it by NOTIFY: the test's poll interval is far longer than `within`); the version."""
    services = services_of(client.app)
    assert services.catalog_sync is not None
    applied = await services.catalog_sync.run()
    async with asyncio.timeout(within):
        while True:
            try:
                snapshot = services.catalog.mirror.current()
            except Exception:  # noqa: BLE001 - not loaded yet
                snapshot = None
            if snapshot is not None and snapshot.version == applied.version:
                return applied.version
            await asyncio.sleep(0.01)

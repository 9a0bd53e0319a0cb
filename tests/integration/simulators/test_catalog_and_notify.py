"""The catalog feed (cursor pages, ETag / 304, change over time) and the notifications provider (inbox, limits)."""

from __future__ import annotations

from typing import Any

import aiohttp

from simulators.client import SimulatorClient


async def get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], etag: str | None = None
) -> tuple[int, str, Any]:
    extra = {"If-None-Match": etag} if etag else {}
    async with http.get(url, headers={**headers, **extra}) as response:
        body = await response.json() if response.status == 200 else None
        return response.status, response.headers.get("ETag", ""), body


async def all_products(http: aiohttp.ClientSession, sim: SimulatorClient, headers: dict[str, str]) -> list[Any]:
    products: list[Any] = []
    cursor = None
    for _ in range(100):
        url = f"{sim.base_url}/v1/products?limit=7" + (f"&cursor={cursor}" if cursor else "")
        _, _, page = await get(http, url, headers)
        products += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return products
    raise AssertionError("the feed never ended")


async def test_cursor_pages_cover_the_whole_catalog_once(
    http: aiohttp.ClientSession, catalog_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    products = await all_products(http, catalog_sim, headers)
    assert len(products) == 50
    assert len({product["id"] for product in products}) == 50


async def test_unchanged_page_answers_304_to_its_etag(
    http: aiohttp.ClientSession, catalog_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    url = f"{catalog_sim.base_url}/v1/products?limit=5"
    status, etag, _ = await get(http, url, headers)
    assert (status, etag.startswith('"')) == (200, True)
    assert (await get(http, url, headers, etag))[:2] == (304, etag)


async def test_products_change_as_the_clock_moves_and_the_etag_follows(
    http: aiohttp.ClientSession, catalog_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    before = await all_products(http, catalog_sim, headers)
    url = f"{catalog_sim.base_url}/v1/products?limit=100"
    _, etag, _ = await get(http, url, headers)
    await catalog_sim.advance_clock(600)  # ten ticks of three changes each
    after = await all_products(http, catalog_sim, headers)
    assert after != before
    status, new_etag, _ = await get(http, url, headers, etag)
    assert (status, new_etag != etag) == (200, True)


async def test_products_are_added_and_removed_through_the_control_api(
    http: aiohttp.ClientSession, catalog_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await catalog_sim.put_product("prod_special", name="Test Lamp", price=1999)
    status, etag, product = await get(http, f"{catalog_sim.base_url}/v1/products/prod_special", headers)
    assert (status, product["name"], product["price"]) == (200, "Test Lamp", 1999)
    assert (await get(http, f"{catalog_sim.base_url}/v1/products/prod_special", headers, etag))[0] == 304
    await catalog_sim.remove_product("prod_special")
    assert (await get(http, f"{catalog_sim.base_url}/v1/products/prod_special", headers))[0] == 404


async def test_a_bad_cursor_is_a_400(
    http: aiohttp.ClientSession, catalog_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    async with http.get(f"{catalog_sim.base_url}/v1/products?cursor=%%%", headers=headers) as response:
        assert response.status == 400


async def test_sent_messages_land_in_the_inbox(
    http: aiohttp.ClientSession, notify_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    message = {"channel": "email", "to": "ada@example.org", "subject": "New login", "body": "Was it you?"}
    async with http.post(f"{notify_sim.base_url}/v1/messages", json=message, headers=headers) as response:
        assert response.status == 202
        sent = await response.json()
    [received] = await notify_sim.inbox(to="ada@example.org")
    assert received == sent
    assert await notify_sim.inbox(channel="sms") == []


async def test_messages_to_the_wrong_kind_of_address_are_refused(
    http: aiohttp.ClientSession, notify_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    for message in (
        {"channel": "sms", "to": "ada@example.org", "body": "x"},
        {"channel": "email", "to": "+49151", "body": "x"},
    ):
        async with http.post(f"{notify_sim.base_url}/v1/messages", json=message, headers=headers) as response:
            assert response.status == 400
    assert await notify_sim.inbox() == []


async def test_notify_is_rate_limited_like_a_real_provider(
    http: aiohttp.ClientSession, notify_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await notify_sim.freeze_clock()  # no token comes back while the burst is spent
    message = {"channel": "sms", "to": "+4915112345678", "body": "code 123456"}
    statuses = []
    for _ in range(11):
        async with http.post(f"{notify_sim.base_url}/v1/messages", json=message, headers=headers) as response:
            statuses.append(response.status)
            retry_after = response.headers.get("Retry-After")
    assert statuses == [202] * 10 + [429]
    assert retry_after == "1"
    assert len(await notify_sim.inbox()) == 10

"""The catalog mirror through the API: a sync against a real catalog simulator, what the API then serves (public,
paged by keyset in one version, filtered, sorted, conditional), and what it serves while the provider is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.settings import Settings
from app.src.api.common.providers import ProviderError
from simulators.client import SimulatorClient
from tests.integration.auth_support import serve
from tests.support.catalog import CLIENT, catalog_simulator, feed_truth, list_all, sync_and_see
from tests.support.postgres import truncate_all
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog_url() -> Iterator[str]:
    with catalog_simulator() as url:
        yield url


def catalog_settings(settings: Settings, url: str, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "catalog_url": url, "catalog_api_key": SecretStr(API_KEY), "catalog_page_size": 20,
            "catalog_versions_kept": 2, "catalog_poll_seconds": 60.0, **changes,
        }
    )  # fmt: skip


@pytest.fixture
async def client(settings: Settings, catalog_url: str, database_uri: str) -> AsyncIterator[HttpClient]:
    await truncate_all(database_uri)
    async with serve(create_app(catalog_settings(settings, catalog_url))) as client:
        yield client
    await truncate_all(database_uri)


@pytest.fixture
async def sim(catalog_url: str) -> AsyncIterator[SimulatorClient]:
    async with SimulatorClient(catalog_url) as client:
        yield client


def as_served(product: dict[str, Any]) -> dict[str, Any]:
    """A feed product as the API serves it."""
    import datetime as dt

    updated_at = dt.datetime.fromtimestamp(product["updated_at"], dt.UTC).isoformat().replace("+00:00", "Z")
    return {key: product[key] for key in ("id", "name", "price", "currency")} | {"updated_at": updated_at}


async def test_before_the_first_sync_the_catalog_is_unavailable_with_retry_after(client: HttpClient) -> None:
    response = await client.get("/api/catalog/items", headers=CLIENT)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert (await response.get_json())["type"].endswith(":catalog-not-synced")


async def test_a_sync_picks_up_additions_price_changes_and_removals(
    client: HttpClient, sim: SimulatorClient, catalog_url: str
) -> None:
    first = await sync_and_see(client)
    items, _ = await list_all(client, limit=7)
    truth = await feed_truth(catalog_url)
    assert items == sorted((as_served(p) for p in truth.values()), key=lambda i: (i["name"].casefold(), i["id"]))

    await sim.put_product("prod_new_1", **{"name": "Zinc Bowl", "price": 1234})
    repriced = sorted(truth)[3]
    await sim.put_product(repriced, **{"name": truth[repriced]["name"], "price": truth[repriced]["price"] + 100})
    removed = sorted(truth)[10]
    await sim.remove_product(removed)
    second = await sync_and_see(client)

    assert second == first + 1
    after = {item["id"]: item for item in (await list_all(client, limit=100))[0]}
    assert after == {id_: as_served(product) for id_, product in (await feed_truth(catalog_url)).items()}
    assert after["prod_new_1"]["price"] == 1234
    assert after[repriced]["price"] == truth[repriced]["price"] + 100
    assert removed not in after
    item = await client.get(f"/api/catalog/items/{removed}", headers=CLIENT)
    assert item.status_code == 404


async def test_changes_made_on_the_simulators_clock_arrive_with_the_next_sync(
    settings: Settings, database_uri: str
) -> None:
    with catalog_simulator(change_every_seconds=60, changes_per_tick=5) as url:
        await truncate_all(database_uri)
        async with SimulatorClient(url) as sim:
            await sim.freeze_clock()
            async with serve(create_app(catalog_settings(settings, url))) as client:
                await sync_and_see(client)
                before = await feed_truth(url)
                await sim.advance_clock(180)  # three ticks of five changes
                after = await feed_truth(url)
                assert after != before
                await sync_and_see(client)
                served = {item["id"]: item for item in (await list_all(client, limit=100))[0]}
                assert served == {id_: as_served(product) for id_, product in after.items()}
        await truncate_all(database_uri)


async def test_an_unchanged_feed_is_read_with_if_none_match_and_makes_no_new_version(
    client: HttpClient, sim: SimulatorClient
) -> None:
    first = await sync_and_see(client)
    await sim.clear_journal()
    assert await sync_and_see(client) == first
    pages = await sim.journal(path="/v1/products")
    assert len(pages) == 3  # 45 products, 20 a page
    assert all(entry["status"] == 304 for entry in pages)


async def test_with_the_provider_down_items_keep_being_served_and_their_age_grows(
    client: HttpClient, sim: SimulatorClient
) -> None:
    await sync_and_see(client)
    before, _ = await list_all(client)
    async with sim.fault(route="/v1/products", status=503):
        with pytest.raises(ProviderError):
            await sync_and_see(client)
        first = await client.get("/api/catalog/items", headers=CLIENT)
        await asyncio.sleep(2.1)  # the age is the behaviour: whole seconds since the last good sync
        second = await client.get("/api/catalog/items", headers=CLIENT)
    assert first.status_code == second.status_code == 200
    first_body, second_body = await first.get_json(), await second.get_json()
    assert second_body["items"] == first_body["items"] == before[:20]
    assert second_body["age_seconds"] >= first_body["age_seconds"] + 2
    assert second.headers["Catalog-Age"] == str(second_body["age_seconds"])
    assert second_body["synced_at"] == first_body["synced_at"]


async def test_a_matching_etag_gets_304_until_the_item_changes(client: HttpClient, sim: SimulatorClient) -> None:
    await sync_and_see(client)
    listing = await client.get("/api/catalog/items", headers=CLIENT)
    item_id = (await listing.get_json())["items"][0]["id"]
    item = await client.get(f"/api/catalog/items/{item_id}", headers=CLIENT)
    assert listing.headers["ETag"].startswith('W/"')
    assert item.headers["ETag"].startswith('W/"')

    for path, etag in (
        ("/api/catalog/items", listing.headers["ETag"]),
        (f"/api/catalog/items/{item_id}", item.headers["ETag"]),
    ):
        again = await client.get(path, headers={**CLIENT, "If-None-Match": etag})
        assert again.status_code == 304
        assert await again.get_data() == b""
        assert again.headers["ETag"] == etag
        assert "Catalog-Age" in again.headers
        other = await client.get(path, headers={**CLIENT, "If-None-Match": 'W/"something-else"'})
        assert other.status_code == 200

    name = (await item.get_json())["item"]["name"]
    await sim.put_product(item_id, **{"name": name, "price": 99_999})
    await sync_and_see(client)
    for path, etag in (
        ("/api/catalog/items", listing.headers["ETag"]),
        (f"/api/catalog/items/{item_id}", item.headers["ETag"]),
    ):
        changed = await client.get(path, headers={**CLIENT, "If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["ETag"] != etag


async def test_a_listing_paged_across_a_sync_shows_its_starting_version_then_410_once_it_is_gone(
    client: HttpClient, sim: SimulatorClient, settings: Settings, catalog_url: str
) -> None:
    first_version = await sync_and_see(client)
    whole_first, _ = await list_all(client, limit=100)
    page = await (await client.get("/api/catalog/items", query_string={"limit": "10"}, headers=CLIENT)).get_json()
    cursor = page["next_cursor"]

    on_a_later_page = whole_first[15]["id"]
    await sim.remove_product(on_a_later_page)
    await sim.put_product("prod_aaa", **{"name": "Aardvark Mug", "price": 700})  # sorts first: before the cursor
    await sim.put_product(whole_first[12]["id"], **{"name": whole_first[12]["name"], "price": 1})
    assert await sync_and_see(client) == first_version + 1

    rest, versions = await list_all(client, limit=10, cursor=cursor)
    assert versions == {first_version}
    assert page["items"] + rest == whole_first  # nothing skipped, repeated or changed

    async with serve(create_app(catalog_settings(settings, catalog_url))) as other_process:
        from_the_database, versions = await list_all(other_process, limit=10, cursor=cursor)
        assert versions == {first_version}
        assert from_the_database == rest

    fresh, versions = await list_all(client, limit=10)
    assert versions == {first_version + 1}
    assert fresh[0]["id"] == "prod_aaa"

    await sim.put_product("prod_bbb", **{"name": "Birch Tray", "price": 800})
    assert await sync_and_see(client) == first_version + 2  # two versions kept: the first is gone
    gone = await client.get("/api/catalog/items", query_string={"limit": "10", "cursor": cursor}, headers=CLIENT)
    assert gone.status_code == 410
    assert gone.content_type == "application/problem+json"
    assert (await gone.get_json())["type"].endswith(":catalog-version-gone")


async def test_filters_and_sorts_select_and_order_the_items(client: HttpClient, catalog_url: str) -> None:
    await sync_and_see(client)
    truth = [as_served(product) for product in (await feed_truth(catalog_url)).values()]
    word = truth[0]["name"].split()[1]

    def by_name(item: dict[str, Any]) -> tuple[str, str]:
        return item["name"].casefold(), item["id"]

    def by_price(item: dict[str, Any]) -> tuple[int, str]:
        return item["price"], item["id"]

    cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({"q": word.upper()}, sorted((i for i in truth if word.casefold() in i["name"].casefold()), key=by_name)),
        ({"sort": "price", "min_price": 10_000, "max_price": 30_000},
         sorted((i for i in truth if 10_000 <= i["price"] <= 30_000), key=by_price)),
        ({"sort": "-price"}, sorted(truth, key=by_price, reverse=True)),
        ({"sort": "-name", "max_price": 20_000},
         sorted((i for i in truth if i["price"] <= 20_000), key=by_name, reverse=True)),
    ]  # fmt: skip
    for params, expected in cases:
        for limit in (1, 7, 100):
            assert (await list_all(client, limit=limit, **params))[0] == expected, (params, limit)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"min_price": "-1"}, "min_price"),
        ({"max_price": "1.5"}, "max_price"),
        ({"sort": "size"}, "sort"),
        ({"q": ""}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "bm90LWpzb24"}, "cursor"),
        ({"min_price": "500", "max_price": "100"}, "min_price"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_query_parameters_are_400_naming_the_parameter(
    client: HttpClient, query: dict[str, str], parameter: str
) -> None:
    await sync_and_see(client)
    response = await client.get("/api/catalog/items", query_string=query, headers=CLIENT)
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert [error["pointer"] for error in (await response.get_json())["errors"]] == [f"/{parameter}"]


async def test_a_cursor_for_other_filters_is_refused(client: HttpClient) -> None:
    await sync_and_see(client)
    page = await (await client.get("/api/catalog/items", query_string={"limit": "5"}, headers=CLIENT)).get_json()
    response = await client.get(
        "/api/catalog/items",
        query_string={"limit": "5", "sort": "price", "cursor": page["next_cursor"]},
        headers=CLIENT,
    )
    assert response.status_code == 400
    assert (await response.get_json())["errors"][0]["pointer"] == "/cursor"


async def test_catalog_reads_need_no_token_but_a_client_id(client: HttpClient) -> None:
    await sync_and_see(client)
    assert (await client.get("/api/catalog/items", headers=CLIENT)).status_code == 200
    anonymous = await client.get("/api/catalog/items")
    assert anonymous.status_code == 400
    assert (await anonymous.get_json())["type"].endswith(":missing-client-id")

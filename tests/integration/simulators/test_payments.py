"""The payments simulator over real HTTP: charges, Stripe's idempotency semantics, refunds, outcomes, auth."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from multidict import CIMultiDict

from simulators.client import SimulatorClient

CHARGE = {"amount": 1250, "currency": "eur", "customer": "cus_42", "metadata": {"order": "o-1"}}


async def post(
    http: aiohttp.ClientSession, sim: SimulatorClient, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, CIMultiDict[str], bytes]:
    async with http.post(sim.base_url + path, json=body, headers=headers) as response:
        return response.status, response.headers.copy(), await response.read()


async def get(http: aiohttp.ClientSession, sim: SimulatorClient, path: str, headers: dict[str, str]) -> Any:
    async with http.get(sim.base_url + path, headers=headers) as response:
        return response.status, await response.json()


async def test_create_charge_returns_a_succeeded_charge(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    status, _, body = await post(http, payments_sim, "/v1/charges", CHARGE, headers)
    assert status == 200
    charge = await get(http, payments_sim, f"/v1/charges/{json.loads(body)['id']}", headers)
    assert charge[0] == 200
    assert {key: charge[1][key] for key in ("amount", "currency", "customer", "status", "metadata")} == {
        "amount": 1250, "currency": "eur", "customer": "cus_42", "status": "succeeded", "metadata": {"order": "o-1"},
    }  # fmt: skip


async def test_same_key_and_params_replay_the_stored_response_byte_for_byte(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    keyed = {**headers, "Idempotency-Key": "order-1"}
    first_status, first_headers, first_body = await post(http, payments_sim, "/v1/charges", CHARGE, keyed)
    second_status, second_headers, second_body = await post(http, payments_sim, "/v1/charges", CHARGE, keyed)
    assert (second_status, second_body) == (first_status, first_body)
    assert "Idempotent-Replayed" not in first_headers
    assert second_headers["Idempotent-Replayed"] == "true"
    _, listing = await get(http, payments_sim, "/v1/charges", headers)
    assert len(listing["data"]) == 1


async def test_same_key_with_other_params_is_refused(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    keyed = {**headers, "Idempotency-Key": "order-2"}
    await post(http, payments_sim, "/v1/charges", CHARGE, keyed)
    status, _, body = await post(http, payments_sim, "/v1/charges", {**CHARGE, "amount": 999}, keyed)
    assert status == 400
    assert b"idempotency_error" in body


async def test_concurrent_request_with_a_key_in_flight_gets_409(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    slow = {"kind": "latency", "distribution": {"type": "fixed", "ms": 400}, "phase": "processing"}
    await payments_sim.add_fault(route="/v1/charges", action=slow, times=1)
    keyed = {**headers, "Idempotency-Key": "order-3"}
    first = asyncio.create_task(post(http, payments_sim, "/v1/charges", CHARGE, keyed))
    await asyncio.sleep(0.1)  # the first request now holds the key for its 400 ms of processing
    status, _, body = await post(http, payments_sim, "/v1/charges", CHARGE, keyed)
    assert status == 409
    assert b"idempotency_key_in_use" in body
    assert (await first)[0] == 200


async def test_a_charge_can_be_found_by_our_idempotency_key(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    _, _, body = await post(http, payments_sim, "/v1/charges", CHARGE, {**headers, "Idempotency-Key": "pay_123"})
    status, found = await get(http, payments_sim, "/v1/charges?idempotency_key=pay_123", headers)
    assert status == 200
    assert [charge["id"] for charge in found["data"]] == [json.loads(body)["id"]]
    _, missing = await get(http, payments_sim, "/v1/charges?idempotency_key=never-used", headers)
    assert missing["data"] == []


async def test_refunds_partial_then_the_rest_and_never_beyond_the_amount(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    _, _, body = await post(http, payments_sim, "/v1/charges", CHARGE, headers)
    charge_id = json.loads(body)["id"]
    partial = await post(http, payments_sim, "/v1/refunds", {"charge": charge_id, "amount": 250}, headers)
    assert partial[0] == 200
    beyond = await post(http, payments_sim, "/v1/refunds", {"charge": charge_id, "amount": 1001}, headers)
    assert beyond[0] == 400
    rest = await post(http, payments_sim, "/v1/refunds", {"charge": charge_id}, headers)
    assert rest[0] == 200
    _, charge = await get(http, payments_sim, f"/v1/charges/{charge_id}", headers)
    assert (charge["amount_refunded"], charge["refunded"]) == (1250, True)
    again = await post(http, payments_sim, "/v1/refunds", {"charge": charge_id, "amount": 1}, headers)
    assert again[0] == 400


async def test_declined_card_is_a_402_with_the_failed_charge(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    status, _, body = await post(http, payments_sim, "/v1/charges", {**CHARGE, "customer": "cus_declined"}, headers)
    assert status == 402
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("card_error", "card_declined")
    _, charge = await get(http, payments_sim, f"/v1/charges/{error['charge']}", headers)
    assert charge["status"] == "failed"


async def test_pending_charge_settles_when_the_clock_reaches_its_time(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await payments_sim.freeze_clock()
    try:
        _, _, body = await post(http, payments_sim, "/v1/charges", {**CHARGE, "customer": "cus_pending"}, headers)
        charge_id = json.loads(body)["id"]
        assert (await get(http, payments_sim, f"/v1/charges/{charge_id}", headers))[1]["status"] == "pending"
        await payments_sim.advance_clock(4)
        assert (await get(http, payments_sim, f"/v1/charges/{charge_id}", headers))[1]["status"] == "pending"
        await payments_sim.advance_clock(1)
        assert (await get(http, payments_sim, f"/v1/charges/{charge_id}", headers))[1]["status"] == "succeeded"
    finally:
        await payments_sim.resume_clock()


async def test_listing_pages_newest_first(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    ids = [json.loads((await post(http, payments_sim, "/v1/charges", CHARGE, headers))[2])["id"] for _ in range(3)]
    _, first = await get(http, payments_sim, "/v1/charges?limit=2", headers)
    assert [charge["id"] for charge in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    _, second = await get(http, payments_sim, f"/v1/charges?limit=2&starting_after={ids[1]}", headers)
    assert ([charge["id"] for charge in second["data"]], second["has_more"]) == ([ids[0]], False)


async def test_requests_without_a_valid_api_key_are_401(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    for authorization in ({}, {"Authorization": "Bearer sk_wrong"}):
        status, response_headers, _ = await post(
            http, payments_sim, "/v1/charges", CHARGE, {"X-Sim-Scope": headers["X-Sim-Scope"], **authorization}
        )
        assert status == 401
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert (await get(http, payments_sim, "/v1/charges", headers))[1]["data"] == []


async def test_invalid_charge_is_400_naming_the_parameter(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    status, _, body = await post(http, payments_sim, "/v1/charges", {**CHARGE, "amount": "12"}, headers)
    assert status == 400
    assert json.loads(body)["error"]["param"] == "amount"


async def test_scopes_do_not_see_each_others_charges(
    http: aiohttp.ClientSession, payments_sim: SimulatorClient, headers: dict[str, str]
) -> None:
    await post(http, payments_sim, "/v1/charges", CHARGE, headers)
    other = {**headers, "X-Sim-Scope": headers["X-Sim-Scope"] + "-other"}
    assert (await get(http, payments_sim, "/v1/charges", other))[1]["data"] == []

"""The invariant checker every billing chaos test ends on must itself catch what it promises to."""

from __future__ import annotations

import aiohttp
import pytest

from app.settings import Settings
from tests.integration.billing_support import billing
from tests.support.billing_invariants import check_billing_invariants
from tests.support.simulator_fixtures import API_KEY

pytestmark = pytest.mark.integration


async def test_the_checker_passes_a_clean_run_and_names_each_broken_invariant(
    settings: Settings, database_uri: str
) -> None:
    async with billing(settings, database_uri) as env:
        payment = await (await env.pay("order-1")).get_json()
        told = {payment["id"]: "succeeded"}
        assert await check_billing_invariants(database_uri, env.sim.base_url, told) == {"succeeded": 1}

        async def broken(**told_now: str) -> str:
            with pytest.raises(AssertionError) as caught:
                await check_billing_invariants(database_uri, env.sim.base_url, told | told_now)
            return str(caught.value)

        assert "pay_lost was told to the client (succeeded) and is missing" in await broken(pay_lost="succeeded")

        await env.rows("UPDATE payments SET status = 'processing'")
        assert "still processing" in await broken()
        await env.rows("UPDATE payments SET status = 'failed'")
        assert "is failed here, succeeded at the provider" in await broken()
        await env.rows("UPDATE payments SET status = 'succeeded'")

        second = {"amount": "1250", "currency": "eur", "customer": "cus_42", "metadata[payment_id]": payment["id"]}
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
            http.post(f"{env.sim.base_url}/v1/charges", data=second) as response,
        ):
            assert response.status == 200
        assert f"{payment['id']} was charged 2 times" in await broken()

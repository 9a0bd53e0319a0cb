"""What every billing chaos test ends on: our records and the provider's, compared after reconciliation.

1. For each payment, the provider holds at most one charge made for it (by the payment id in its metadata), and
   the provider holds no charge for a payment we do not have.
2. After reconciliation no payment is still processing, and each one's status is its charge's (a payment with no
   charge failed, `never_charged`, or was declined before a charge was made).
3. Every payment the client was told about (its id in an answer) is in the database, with the status it was told,
   unless it was told `processing` (which settles later).
4. Refunds never exceed the charge, on either side, and the refunds we count succeeded are what the provider
   refunded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import make_url

from tests.support.simulator_fixtures import API_KEY


async def provider_charges(simulator_url: str, headers: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every charge the provider holds (paged through), oldest first."""
    charges: list[dict[str, Any]] = []
    params = {"limit": "100"}
    sent = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
    async with aiohttp.ClientSession(headers=sent) as http:
        for _ in range(1000):
            async with http.get(f"{simulator_url}/v1/charges", params=params) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            charges.extend(page["data"])
            if not page["has_more"]:
                return list(reversed(charges))
            params["starting_after"] = page["data"][-1]["id"]
    raise AssertionError("the provider's charges never ended")


async def check_billing_invariants(
    database_uri: str, simulator_url: str, told: Mapping[str, str] | None = None
) -> dict[str, int]:
    """AssertionError naming every broken invariant; else how many payments ended in each status."""
    connection = await asyncpg.connect(make_url(database_uri).render_as_string(hide_password=False))
    try:
        payments = {row["public_id"]: row for row in await connection.fetch(
            "SELECT public_id, status, charge_id, failure_code, amount, amount_refunded FROM payments"
        )}  # fmt: skip
        refunded = {row["public_id"]: row["total"] for row in await connection.fetch(
            "SELECT p.public_id, sum(r.amount) AS total FROM refunds r JOIN payments p ON p.id = r.payment_id "
            "WHERE r.status = 'succeeded' GROUP BY p.public_id"
        )}  # fmt: skip
    finally:
        await connection.close()
    charges = await provider_charges(simulator_url)
    by_payment: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for charge in charges:
        by_payment[charge["metadata"].get("payment_id")].append(charge)

    broken = [f"{len(made)} charge(s) for {payment_id}, a payment we do not have"
              for payment_id, made in by_payment.items() if payment_id not in payments]  # fmt: skip
    for payment_id, row in payments.items():
        broken.extend(_payment_broken(payment_id, row, by_payment.get(payment_id, []), refunded.get(payment_id, 0)))
    for payment_id, status in (told or {}).items():
        if payment_id not in payments:
            broken.append(f"{payment_id} was told to the client ({status}) and is missing")
        elif status != "processing" and payments[payment_id]["status"] != status:
            broken.append(f"{payment_id} was told {status}, is {payments[payment_id]['status']}")
    assert not broken, "billing invariants broken:\n" + "\n".join(broken)
    counts: dict[str, int] = defaultdict(int)
    for row in payments.values():
        counts[row["status"]] += 1
    return dict(counts)


def _payment_broken(payment_id: str, row: Mapping[str, Any], made: list[dict[str, Any]], refunded: int) -> list[str]:
    """What is wrong with one payment against the charges made for it."""
    broken = []
    if len(made) > 1:
        broken.append(f"{payment_id} was charged {len(made)} times")
    if row["status"] == "processing":
        broken.append(f"{payment_id} is still processing after reconciliation")
    elif made and made[0]["status"] != row["status"]:
        broken.append(f"{payment_id} is {row['status']} here, {made[0]['status']} at the provider")
    elif made and row["charge_id"] != made[0]["id"]:
        broken.append(f"{payment_id} names charge {row['charge_id']}, the provider made {made[0]['id']}")
    elif not made and row["status"] != "failed":
        broken.append(f"{payment_id} is {row['status']} but the provider has no charge for it")
    if not 0 <= row["amount_refunded"] <= row["amount"]:
        broken.append(f"{payment_id} has {row['amount_refunded']} refunded of {row['amount']}")
    if made and not made[0]["amount_refunded"] <= made[0]["amount"]:
        broken.append(f"the provider refunded {made[0]['amount_refunded']} of {payment_id}'s {made[0]['amount']}")
    if made and refunded != made[0]["amount_refunded"]:
        broken.append(f"{payment_id}: refunds succeeded here {refunded}, at the provider {made[0]['amount_refunded']}")
    return broken

"""The floor for `make bench-billing`: a minimal Quart app doing what the full stack's billing routes do in the
database and at the provider, with plain asyncpg and aiohttp, and nothing else (no token opened, no validation,
no limits, no metrics, no resilience policy): the session check, then

- GET /api/billing/payments/<id>: the payment row;
- POST /api/billing/payments: the key claimed, (a) the payment and the key's recovery point in one transaction,
  (b) the one charge call, (c) the outcome, the user's address and the receipt in one transaction, the answer
  kept on the key.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from urllib.parse import urlencode

import aiohttp
import asyncpg
from quart import Quart, Response, request

app = Quart(__name__)
SESSION_ID = uuid.UUID(os.environ["BENCH_SESSION_ID"])
PAYMENTS_URL = os.environ["BENCH_PAYMENTS_URL"]
API_KEY = os.environ["BENCH_PAYMENTS_API_KEY"]
state: dict[str, object] = {}


@app.before_serving
async def open_pool() -> None:
    state["pool"] = await asyncpg.create_pool(os.environ["BENCH_DB_URI"], min_size=10, max_size=10)
    state["http"] = aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"})


def _pool() -> asyncpg.Pool:
    pool: asyncpg.Pool = state["pool"]
    return pool


async def _user_id(connection: asyncpg.Connection) -> int:
    row = await connection.fetchrow(
        "SELECT s.user_id, u.roles FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()",
        SESSION_ID,
    )
    return int(row["user_id"])


@app.get("/api/billing/payments/<payment_id>")
async def payment(payment_id: str) -> Response:
    async with _pool().acquire() as connection:
        user_id = await _user_id(connection)
        row = await connection.fetchrow(
            "SELECT public_id, amount, currency, customer, description, status, failure_code, amount_refunded, "
            "created_at, updated_at FROM payments WHERE public_id = $1 AND user_id = $2",
            payment_id, user_id,
        )  # fmt: skip
    return Response(json.dumps({**dict(row), "id": row["public_id"]}, default=str), content_type="application/json")


@app.post("/api/billing/payments")
async def create() -> Response:
    body = await request.get_json()
    key = request.headers["Idempotency-Key"]
    pool = _pool()
    async with pool.acquire() as connection:
        user_id = await _user_id(connection)
        key_id = await connection.fetchval(
            "INSERT INTO idempotency_keys (user_id, client_id, key, operation, fingerprint, locked_until) "
            "VALUES ($1, 'bench', $2, 'billing.create_payment', $3, now() + interval '60 seconds') "
            "ON CONFLICT (user_id, client_id, key) DO NOTHING RETURNING id",
            user_id, key, secrets.token_bytes(32),
        )  # fmt: skip
        public_id = f"pay_{secrets.token_urlsafe(12)}"
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO payments (public_id, user_id, amount, currency, customer, description, reconcile_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, now() + interval '60 seconds')",
                public_id, user_id, body["amount"], body["currency"], body["customer"], body["description"],
            )  # fmt: skip
            await connection.execute(
                "UPDATE idempotency_keys SET resource_id = $2, recovery_point = 'payment-made' WHERE id = $1",
                key_id, public_id,
            )  # fmt: skip
    form = urlencode({"amount": body["amount"], "currency": body["currency"], "customer": body["customer"],
                      "description": body["description"], "metadata[payment_id]": public_id})  # fmt: skip
    headers = {"Idempotency-Key": f"proving-ground-charge-{public_id}",
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    http: aiohttp.ClientSession = state["http"]  # type: ignore[assignment]
    async with http.post(f"{PAYMENTS_URL}/v1/charges", data=form, headers=headers) as answer:
        charge = await answer.json()
    async with pool.acquire() as connection:
        async with connection.transaction():
            row = await connection.fetchrow(
                "UPDATE payments SET status = $2, charge_id = $3, reconcile_at = NULL, updated_at = now() "
                "WHERE public_id = $1 AND status = 'processing' RETURNING public_id, amount, currency, customer, "
                "description, status, failure_code, amount_refunded, created_at, updated_at",
                public_id, charge["status"], charge["id"],
            )  # fmt: skip
            email = await connection.fetchval("SELECT email FROM users WHERE id = $1", user_id)
            await connection.execute(
                "INSERT INTO outbox (kind, about, payload, idempotency_key) VALUES ('receipt', $1, $2::jsonb, $3)",
                f"user:{user_id}", json.dumps({"channel": "email", "to": email, "body": public_id}),
                f"receipt-{public_id}",
            )  # fmt: skip
        answer_body = json.dumps({**dict(row), "id": public_id}, default=str)
        await connection.execute(
            "UPDATE idempotency_keys SET response_status = 201, response_headers = $2, response_body = $3, "
            "locked_until = NULL, recovery_point = 'finished' WHERE id = $1",
            key_id, b"{}", answer_body.encode(),
        )  # fmt: skip
    return Response(answer_body, status=201, content_type="application/json")

"""The simulators' idempotency store, answer by answer, as Stripe words them: the state machine in
test_properties.py proves which answer each request gets; these prove what the answers say."""

from __future__ import annotations

import json

from quart import Response

from simulators.engine.idempotency import REPLAYED_HEADER, IdempotencyStore, fingerprint, stripe_error

IDENTITY = ("payments", "sk_test_1", "key-1")


async def charge() -> tuple[Response, str | None]:
    return Response('{"id": "ch_1"}', status=402, content_type="application/json"), "ch_1"


async def answer(response: Response) -> tuple[int, str, dict[str, object]]:
    return response.status_code, response.content_type, json.loads(await response.get_data(as_text=True))


async def test_other_parameters_under_a_key_get_stripes_idempotency_error() -> None:
    store = IdempotencyStore()
    await store.run(IDENTITY, "first", charge)
    response = await store.run(IDENTITY, "second", charge)
    assert await answer(response) == (
        400,
        "application/json",
        {
            "error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were "
                "first used with.",
            }
        },
    )


async def test_a_key_in_flight_gets_stripes_key_in_use_error() -> None:
    store = IdempotencyStore()

    async def replay_while_in_flight() -> tuple[Response, str | None]:
        in_flight = await store.run(IDENTITY, "first", charge)
        assert await answer(in_flight) == (
            409,
            "application/json",
            {
                "error": {
                    "type": "idempotency_error",
                    "message": "There is currently another in-progress request using this Idempotent Key.",
                    "code": "idempotency_key_in_use",
                }
            },
        )
        return await charge()

    first = await store.run(IDENTITY, "first", replay_while_in_flight)
    assert first.status_code == 402


async def test_a_replay_is_the_first_answer_byte_for_byte_with_its_headers_and_marked_replayed() -> None:
    store = IdempotencyStore()
    first = await store.run(IDENTITY, "first", charge)
    replay = await store.run(IDENTITY, "first", charge)
    assert (replay.status_code, await replay.get_data(as_text=False)) == (402, b'{"id": "ch_1"}')
    assert replay.headers["Content-Type"] == first.headers["Content-Type"] == "application/json"
    assert replay.headers[REPLAYED_HEADER] == "true"
    assert REPLAYED_HEADER not in first.headers


async def test_error_bodies_carry_the_extra_fields_given() -> None:
    response = stripe_error(400, "invalid_request_error", "Bad amount.", param="amount")
    assert await answer(response) == (
        400,
        "application/json",
        {"error": {"type": "invalid_request_error", "message": "Bad amount.", "param": "amount"}},
    )


def test_the_fingerprint_ignores_the_order_of_parameters_and_sees_every_value() -> None:
    same = fingerprint("POST", "/v1/charges", {"amount": 500, "currency": "eur"})
    assert fingerprint("POST", "/v1/charges", {"currency": "eur", "amount": 500}) == same
    assert fingerprint("POST", "/v1/charges", {"amount": 501, "currency": "eur"}) != same
    assert fingerprint("POST", "/v1/refunds", {"amount": 500, "currency": "eur"}) != same
    assert fingerprint("GET", "/v1/charges", {"amount": 500, "currency": "eur"}) != same

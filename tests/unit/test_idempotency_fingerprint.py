"""An idempotency key's fingerprint: the same for the same operation and parameters however they were ordered,
and different for any other operation or value (a key reused for other parameters is refused by it)."""

from __future__ import annotations

from app.src.api.idempotency.keys import fingerprint


def test_the_fingerprint_ignores_the_order_of_parameters_at_every_depth() -> None:
    one = fingerprint("billing.create_payment", {"data": {"amount": 5, "currency": "eur"}, "payment_id": "p_1"})
    other = fingerprint("billing.create_payment", {"payment_id": "p_1", "data": {"currency": "eur", "amount": 5}})
    assert one == other


def test_another_operation_or_value_gives_another_fingerprint() -> None:
    parameters = {"data": {"amount": 5, "currency": "eur"}}
    same = fingerprint("billing.create_payment", parameters)
    assert fingerprint("billing.refund_payment", parameters) != same
    assert fingerprint("billing.create_payment", {"data": {"amount": 6, "currency": "eur"}}) != same

"""The receipt of a payment. The payment's description is the user's own text and goes to the user's own address;
amounts are shown in the currency's minor unit as stored (the service keeps no table of currency exponents)."""

from __future__ import annotations

from app.src.database.outbox import Message
from app.src.database.payments import PaymentRow

RECEIPT = "receipt"


def receipt(payment: PaymentRow, email: str) -> Message:
    body = (
        f"We received your payment {payment.public_id}: {payment.amount} (minor units of {payment.currency.upper()})"
        f"{f' for {payment.description}' if payment.description else ''}.\n\nThank you."
    )
    return Message(
        kind=RECEIPT,
        about=f"user:{payment.user_id}",
        payload={"channel": "email", "to": email, "subject": f"Receipt for payment {payment.public_id}", "body": body},
        idempotency_key=f"receipt-{payment.public_id}",
    )

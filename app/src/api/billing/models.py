"""What the billing API takes and answers."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from app.src.api.common.models.base import StrictModel

PaymentStatus = Literal["processing", "succeeded", "failed"]
MAX_AMOUNT = 99_999_999  # the provider's limit (Stripe's, in minor units)


class PaymentRequest(StrictModel):
    amount: int = Field(ge=1, le=MAX_AMOUNT, description="In the currency's minor unit (cents for eur)")
    currency: str = Field(pattern="^[a-z]{3}$", description="ISO 4217, lower case")
    customer: str = Field(pattern="^cus_[A-Za-z0-9_]{1,64}$", description="The provider's customer to charge")
    description: str | None = Field(default=None, max_length=500)


class Payment(StrictModel):
    id: str
    amount: int
    currency: str
    customer: str
    description: str | None
    status: PaymentStatus = Field(description="processing until the provider's outcome is known")
    failure_code: str | None = Field(description="Why it failed, as the provider said (card_declined, ...)")
    amount_refunded: int = Field(description="Refunded, or being refunded")
    created_at: dt.datetime
    updated_at: dt.datetime


class PaymentPage(StrictModel):
    items: list[Payment] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class RefundRequest(StrictModel):
    amount: int | None = Field(default=None, ge=1, le=MAX_AMOUNT, description="Omitted: all that is left")
    reason: str | None = Field(default=None, max_length=200)


class Refund(StrictModel):
    id: str
    payment_id: str
    amount: int
    status: PaymentStatus
    created_at: dt.datetime

"""The payments provider's API objects, shaped like Stripe's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from simulators.engine.config import SimulatorConfig

ChargeStatus = Literal["pending", "succeeded", "failed"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChargeRequest(_Input):
    amount: int = Field(gt=0, le=99_999_999, description="In the currency's smallest unit.")
    currency: str = Field(pattern=r"^[a-z]{3}$")
    customer: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class RefundRequest(_Input):
    charge: str = Field(min_length=1)
    amount: int | None = Field(default=None, gt=0, description="Omitted: whatever is left to refund.")
    reason: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class Charge(BaseModel):
    id: str
    object: Literal["charge"] = "charge"
    amount: int
    amount_refunded: int = 0
    currency: str
    customer: str
    description: str | None
    metadata: dict[str, str]
    status: ChargeStatus
    failure_code: str | None = None
    refunded: bool = False
    created: int
    idempotency_key: str | None = None
    livemode: bool = False
    captured: bool = True
    settles_at: float | None = Field(default=None, exclude=True)
    settles_to: ChargeStatus | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def paid(self) -> bool:
        return self.status == "succeeded"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failure_message(self) -> str | None:
        return "Your card was declined." if self.failure_code == "card_declined" else None


class Refund(BaseModel):
    id: str
    object: Literal["refund"] = "refund"
    charge: str
    amount: int
    reason: str | None
    status: Literal["succeeded"] = "succeeded"
    created: int


class Outcomes(BaseModel):
    """How charges turn out. Customers `cus_declined`, `cus_pending` and `cus_pending_declined` force an outcome."""

    model_config = ConfigDict(extra="forbid")

    pending_probability: float = Field(default=0.0, ge=0, le=1)
    failure_probability: float = Field(default=0.0, ge=0, le=1)
    pending_failure_probability: float = Field(default=0.0, ge=0, le=1)
    settle_after_seconds: float = Field(default=5.0, ge=0)


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, pattern=r"^https?://")
    secrets: list[str] = Field(default_factory=lambda: ["whsec_proving_ground"], min_length=1)
    delay_seconds: float = Field(default=0.0, ge=0, le=3600)
    duplicates: int = Field(default=0, ge=0, le=10, description="Extra copies of every event.")
    reorder_window_seconds: float = Field(default=0.0, ge=0, le=3600, description="Random extra delay per copy.")
    drop_probability: float = Field(default=0.0, ge=0, le=1)
    max_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_seconds: float = Field(default=0.5, ge=0, le=600)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class PaymentsConfig(SimulatorConfig):
    outcomes: Outcomes = Field(default_factory=Outcomes)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

"""/api/billing: transport only (parse, call the billing service, shape the response).

Creating a payment or a refund takes an Idempotency-Key (app/http/idempotency.py). A payment whose outcome the
provider has not given yet is answered 202 (its status is `processing`): a retry with the same key, or
`GET /payments/{id}` later, tells how it ended.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field
from quart import Blueprint, Response, g, request
from quart_schema import document_response, validate_querystring

from app.http.authentication import public
from app.http.documented import reads_headers
from app.http.idempotency import idempotent
from app.http.problems import ProblemError
from app.http.services import services
from app.http.validation import json_response, responds, validate_body
from app.src.api.billing.models import Payment, PaymentPage, PaymentRequest, Refund, RefundRequest
from app.src.api.billing.service import BillingService
from app.src.api.billing.webhooks import SIGNATURE_HEADER, RejectedEventError
from app.src.api.common.models.base import StrictModel
from app.src.api.idempotency.keys import Claim

blueprint = Blueprint("billing", __name__)
SMALL_BODY = 16 * 1024
WEBHOOK_BODY = 256 * 1024
PUBLIC_ID = "<string(maxlength=64):payment_id>"


class PageQuery(StrictModel):
    model_config = ConfigDict(strict=False)  # query strings are text: "20" is a number here

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$",
                               description="next_cursor of the previous page")  # fmt: skip


def _billing() -> BillingService:
    return services().billing


def _user_id() -> int:
    user_id: int = g.profile.user_id
    return user_id


@blueprint.after_request
async def never_cache(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/payments")
@document_response(Payment, 201)
@document_response(Payment, 202)
@validate_body(PaymentRequest, SMALL_BODY)
@idempotent("billing.create_payment")
async def create_payment(data: PaymentRequest, claim: Claim) -> Response:
    """201 once the provider charged it; 202 while its outcome is not known (status `processing`); 402 when the
    card was declined (the failed payment's id is in the detail)."""
    payment = await _billing().create_payment(_user_id(), data, claim)
    response = json_response(payment, 201 if payment.status == "succeeded" else 202)
    response.headers["Location"] = f"{request.path}/{payment.id}"
    return response


@blueprint.get("/payments")
@validate_querystring(PageQuery)
@responds(PaymentPage)
async def list_payments(query_args: PageQuery) -> PaymentPage:
    """Your payments, newest first."""
    return await _billing().payments(_user_id(), query_args.limit, query_args.cursor)


@blueprint.get(f"/payments/{PUBLIC_ID}")
@responds(Payment)
async def get_payment(payment_id: str) -> Payment:
    """One of your payments (any other id is 404)."""
    return await _billing().payment(_user_id(), payment_id)


@blueprint.post(f"/payments/{PUBLIC_ID}/refunds")
@document_response(Refund, 201)
@document_response(Refund, 202)
@validate_body(RefundRequest, SMALL_BODY)
@idempotent("billing.refund_payment")
async def refund_payment(payment_id: str, data: RefundRequest, claim: Claim) -> Response:
    """Never more than what is left of the payment, refunds made at the same time included (409 otherwise)."""
    refund = await _billing().refund(_user_id(), payment_id, data, claim)
    return json_response(refund, 201 if refund.status == "succeeded" else 202)


@blueprint.post("/webhooks/payments")
@public
@reads_headers(
    {"name": SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
     "description": "t=<unix time>,v1=<hex HMAC-SHA256 of 't.body'> (one v1 per secret while they rotate)"}
)  # fmt: skip
async def payment_events() -> Response:
    """The payments provider's events, signed (Stripe-Signature); a duplicate or a late event changes nothing."""
    body = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    if len(body) > WEBHOOK_BODY:
        raise ProblemError(413, "An event is at most 256 KiB.")
    try:
        await _billing().receive_event(body, request.headers.get(SIGNATURE_HEADER))
    except RejectedEventError as error:
        raise ProblemError(400, str(error), slug=error.code) from None
    return Response(b'{"received":true}', status=200, content_type="application/json")

"""A Stripe-like payments provider: charges, refunds, real idempotency, asynchronous outcomes, signed webhooks."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, jsonify, request

from simulators.engine.control import ScopeQuery
from simulators.engine.idempotency import IdempotencyStore, fingerprint, stripe_error
from simulators.engine.middleware import hold_processing
from simulators.engine.simulator import InvalidRequestError, Simulator, parse, parse_body, parse_control
from simulators.payments.models import Charge, ChargeRequest, PaymentsConfig, RefundRequest, WebhookSettings
from simulators.payments.search import QueryError, matcher
from simulators.payments.store import Ledger, RefundRejectedError
from simulators.payments.webhooks import WebhookSender

EVENT_FOR_STATUS = {"succeeded": "charge.succeeded", "failed": "charge.failed", "pending": "charge.pending"}


class ChargeListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=10, ge=1, le=100)
    starting_after: str | None = None
    customer: str | None = None
    idempotency_key: str | None = None


class ChargeSearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=1000)
    limit: int = Field(default=10, ge=1, le=100)
    page: str | None = None


class PaymentsSimulator(Simulator[PaymentsConfig]):
    name = "payments"
    config_model = PaymentsConfig

    def __init__(self, config: PaymentsConfig) -> None:
        super().__init__(config)
        self._ledgers: dict[str | None, Ledger] = {}
        self.idempotency = IdempotencyStore()
        self.webhooks = WebhookSender(self.engine.clock, config.seed, self.spawn, config.webhooks)
        self.engine.clock.on_change(self.settle_due)
        self._settle_timer: asyncio.TimerHandle | None = None

    def ledger(self, scope: str | None) -> Ledger:
        ledger = self._ledgers.get(scope)
        if ledger is None:
            rng = random.Random(f"{self.config.seed}:{scope or ''}:outcomes")  # noqa: S311 - simulation
            ledger = self._ledgers[scope] = Ledger(rng)
        return ledger

    def reset_state(self, scope: str | None) -> None:
        self.idempotency.forget_scope(scope)
        self.webhooks.forget(scope, self.config.seed)
        if scope is None:
            self._ledgers.clear()
        else:
            self._ledgers.pop(scope, None)

    def reconfigure(self, config: PaymentsConfig) -> None:
        super().reconfigure(config)
        self.webhooks.defaults = config.webhooks

    def settle_due(self, changed: str | None = None) -> None:
        """Pending charges whose time has come (by their scope's clock) succeed or fail, with their webhook."""
        for scope, ledger in list(self._ledgers.items()):
            for charge in ledger.settle_due(self.engine.clock.now(scope)):
                self.webhooks.emit(scope, EVENT_FOR_STATUS[charge.status], charge.model_dump(mode="json"))

    def _settle_later(self, scope: str | None, seconds: float) -> None:
        if not self.engine.clock.frozen(scope):
            asyncio.get_running_loop().call_later(seconds, self.settle_due)

    async def stop_background_work(self) -> None:
        await super().stop_background_work()
        await self.webhooks.close()

    def routes(self) -> Blueprint:
        blueprint = Blueprint("payments", __name__)

        @blueprint.before_request
        async def authenticate() -> Response | None:
            if self.authorized():
                return None
            response = stripe_error(401, "invalid_request_error", "Invalid API Key provided.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="payments"'
            return response

        @blueprint.post("/v1/charges")
        async def create_charge() -> Response:
            data = await parse_body(ChargeRequest)
            return await self._idempotent("/v1/charges", data, lambda key: self._create_charge(data, key))

        @blueprint.get("/v1/charges/<charge_id>")
        async def get_charge(charge_id: str) -> Response:
            self.settle_due()
            charge = self.ledger(_scope()).charges.get(charge_id)
            if charge is None:
                return stripe_error(404, "invalid_request_error", f"No such charge: '{charge_id}'", param="id")
            return jsonify(charge.model_dump(mode="json"))

        @blueprint.get("/v1/charges")
        async def list_charges() -> Response:
            self.settle_due()
            query = parse(ChargeListQuery, request.args.to_dict(), lenient=True)
            ledger = self.ledger(_scope())
            if query.idempotency_key is not None:
                found = ledger.by_idempotency_key.get(query.idempotency_key)
                return _list([ledger.charges[found]] if found else [], has_more=False)
            newest_first = [c for c in reversed(ledger.charges.values()) if query.customer in (None, c.customer)]
            newest_first = _after(newest_first, query.starting_after, "starting_after")
            page = newest_first[: query.limit]
            return _list(page, has_more=len(newest_first) > len(page))

        @blueprint.get("/v1/charges/search")
        async def search_charges() -> Response:
            self.settle_due()
            query = parse(ChargeSearchQuery, request.args.to_dict(), lenient=True)
            try:
                selects = matcher(query.query)
            except QueryError as error:
                raise InvalidRequestError(str(error), "query") from None
            found = [charge for charge in reversed(self.ledger(_scope()).charges.values()) if selects(charge)]
            found = _after(found, query.page, "page")
            page = found[: query.limit]
            more = len(found) > len(page)
            return jsonify({
                "object": "search_result", "url": "/v1/charges/search",
                "data": [charge.model_dump(mode="json") for charge in page],
                "has_more": more, "next_page": page[-1].id if more else None,
            })  # fmt: skip

        @blueprint.post("/v1/refunds")
        async def create_refund() -> Response:
            data = await parse_body(RefundRequest)
            return await self._idempotent("/v1/refunds", data, lambda key: self._create_refund(data))

        return blueprint

    async def _idempotent(self, path: str, data: BaseModel, produce: Any) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            response, _ = await produce(None)
            return response  # type: ignore[no-any-return]
        identity = (_scope() or "", self.api_key(), key)
        params = data.model_dump(mode="json")
        return await self.idempotency.run(identity, fingerprint("POST", path, params), lambda: produce(key))

    async def _create_charge(self, data: ChargeRequest, idempotency_key: str | None) -> tuple[Response, str]:
        await hold_processing(request.scope)
        scope = _scope()
        outcomes = self.config.outcomes
        charge = self.ledger(scope).create_charge(data, self.engine.clock.now(scope), outcomes, idempotency_key)
        body = charge.model_dump(mode="json")
        self.webhooks.emit(scope, EVENT_FOR_STATUS[charge.status], body)
        if charge.status == "pending":
            self._settle_later(scope, outcomes.settle_after_seconds)
        if charge.status == "failed":
            declined = stripe_error(
                402, "card_error", "Your card was declined.", code="card_declined", charge=charge.id
            )
            return declined, charge.id
        return jsonify(body), charge.id

    async def _create_refund(self, data: RefundRequest) -> tuple[Response, str | None]:
        await hold_processing(request.scope)
        scope = _scope()
        self.settle_due()
        try:
            refund = self.ledger(scope).refund(data.charge, data.amount, data.reason, self.engine.clock.now(scope))
        except RefundRejectedError as rejected:
            return stripe_error(400, "invalid_request_error", str(rejected), param="amount"), None
        charge: Charge = self.ledger(scope).charges[data.charge]
        self.webhooks.emit(scope, "charge.refunded", charge.model_dump(mode="json"))
        return jsonify(refund.model_dump(mode="json")), refund.id

    def controls(self) -> Blueprint:
        blueprint = Blueprint("payments_control", __name__)

        @blueprint.put("/webhooks")
        async def register_webhook() -> Response:
            scope = parse_control(ScopeQuery, request.args.to_dict()).scope
            settings = parse_control(WebhookSettings, await request.get_json(force=True, silent=True) or {})
            self.webhooks.register(scope, settings)
            return jsonify(settings.model_dump(mode="json"))

        @blueprint.get("/webhooks/deliveries")
        async def deliveries() -> Response:
            scope = parse_control(ScopeQuery, request.args.to_dict()).scope
            return jsonify({"deliveries": self.webhooks.deliveries(scope)})

        return blueprint


def _scope() -> str | None:
    return request.headers.get("X-Sim-Scope")


def _list(charges: list[Charge], *, has_more: bool) -> Response:
    data = [charge.model_dump(mode="json") for charge in charges]
    return jsonify({"object": "list", "url": "/v1/charges", "data": data, "has_more": has_more})


def _after(newest_first: list[Charge], cursor: str | None, param: str) -> list[Charge]:
    """The charges after the one `cursor` names (all of them without a cursor)."""
    if cursor is None:
        return newest_first
    ids = [charge.id for charge in newest_first]
    if cursor not in ids:
        raise InvalidRequestError(f"{param} is not a charge of this list.", param)
    return newest_first[ids.index(cursor) + 1 :]

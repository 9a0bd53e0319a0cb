"""An SMS and e-mail sending API, rate-limited like a real provider, with an inbox tests can read."""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from quart import Blueprint, Response, jsonify, request

from simulators.engine.config import SimulatorConfig
from simulators.engine.idempotency import IdempotencyStore, fingerprint, stripe_error
from simulators.engine.rules import RateLimit, RuleSpec
from simulators.engine.simulator import Simulator, parse_body, parse_control

SEND_ROUTE = "/v1/messages"


def _provider_rate_limit() -> list[RuleSpec]:
    return [RuleSpec(route=SEND_ROUTE, method="POST", action=RateLimit(rate=5, burst=10))]


class NotifyConfig(SimulatorConfig):
    rules: list[RuleSpec] = Field(default_factory=_provider_rate_limit)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    channel: Literal["sms", "email"]
    to: str = Field(min_length=3, max_length=320)
    subject: str | None = Field(default=None, max_length=200)
    body: str = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _address_fits_channel(self) -> MessageRequest:
        if self.channel == "email" and "@" not in self.to:
            raise ValueError("an e-mail goes to an address with @")
        if self.channel == "sms" and not (self.to.startswith("+") and self.to[1:].isdigit() and len(self.to) <= 16):
            raise ValueError("an SMS goes to an E.164 number, like +4915112345678")
        return self


class Message(MessageRequest):
    model_config = ConfigDict(extra="forbid")

    id: str
    status: Literal["queued"] = "queued"
    created: int
    scope: str | None = Field(default=None, exclude=True)


class InboxQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str | None = None
    to: str | None = None
    channel: Literal["sms", "email"] | None = None


class NotifySimulator(Simulator[NotifyConfig]):
    name = "notify"
    config_model = NotifyConfig

    def __init__(self, config: NotifyConfig) -> None:
        super().__init__(config)
        self._inbox: defaultdict[str | None, dict[str, Message]] = defaultdict(dict)
        self.idempotency = IdempotencyStore()

    def reset_state(self, scope: str | None) -> None:
        self.idempotency.forget_scope(scope)
        if scope is None:
            self._inbox.clear()
        else:
            self._inbox.pop(scope, None)

    def routes(self) -> Blueprint:
        blueprint = Blueprint("notify", __name__)

        @blueprint.before_request
        async def authenticate() -> Response | None:
            if self.authorized():
                return None
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided.")

        @blueprint.post(SEND_ROUTE)
        async def send() -> Response:
            data = await parse_body(MessageRequest)
            scope = request.headers.get("X-Sim-Scope")
            key = request.headers.get("Idempotency-Key")

            async def accept() -> tuple[Response, str]:
                message = Message(
                    **data.model_dump(), id=f"msg_{secrets.token_hex(12)}", created=int(self.engine.clock.now(scope))
                )
                self._inbox[scope][message.id] = message
                response = jsonify(message.model_dump(mode="json"))
                response.status_code = 202
                return response, message.id

            if key is None:
                return (await accept())[0]
            identity = (scope or "", self.api_key(), key)
            return await self.idempotency.run(
                identity, fingerprint("POST", SEND_ROUTE, data.model_dump(mode="json")), accept
            )

        @blueprint.get("/v1/messages/<message_id>")
        async def get_message(message_id: str) -> Response:
            message = self._inbox[request.headers.get("X-Sim-Scope")].get(message_id)
            if message is None:
                return stripe_error(404, "invalid_request_error", f"No such message: '{message_id}'")
            return jsonify(message.model_dump(mode="json"))

        return blueprint

    def controls(self) -> Blueprint:
        blueprint = Blueprint("notify_control", __name__)

        @blueprint.get("/inbox")
        async def inbox() -> Response:
            query = parse_control(InboxQuery, request.args.to_dict())
            messages = [
                message.model_dump(mode="json")
                for message in self._inbox.get(query.scope, {}).values()
                if query.to in (None, message.to) and query.channel in (None, message.channel)
            ]
            return jsonify({"messages": messages})

        return blueprint

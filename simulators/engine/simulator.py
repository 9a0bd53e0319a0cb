"""What the three simulators share: the fault engine, the control API and the app around their routes."""

from __future__ import annotations

import asyncio
import gc
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from quart import Blueprint, Quart, Response, request
from werkzeug.exceptions import HTTPException

from simulators.engine.config import SimulatorConfig
from simulators.engine.control import control_blueprint
from simulators.engine.engine import FaultEngine
from simulators.engine.forms import FormError, decode_form
from simulators.engine.idempotency import stripe_error
from simulators.engine.middleware import CONTROL_PREFIX, FaultInjectionMiddleware
from simulators.engine.problems import ControlError, invalid, problem

ConfigT = TypeVar("ConfigT", bound=SimulatorConfig)
ModelT = TypeVar("ModelT", bound=BaseModel)


class InvalidRequestError(Exception):
    """A provider request that fails its schema: a Stripe-style 400 naming the parameter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class Simulator(ABC, Generic[ConfigT]):
    name: ClassVar[str]
    config_model: ClassVar[type[SimulatorConfig]]

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self.engine = FaultEngine(seed=config.seed, journal_size=config.journal_size)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._install_rules()

    def _install_rules(self) -> None:
        for spec in self.config.rules:
            self.engine.add(spec)

    # what a provider adds

    @abstractmethod
    def routes(self) -> Blueprint:
        """The provider's own API."""

    def controls(self) -> Blueprint | None:
        """Provider-specific control routes under /__sim/."""
        return None

    def reset_state(self, scope: str | None) -> None:
        """Forget the provider's data of one scope, or of all when scope is None."""

    # shared behaviour

    def reset(self, scope: str | None) -> None:
        self.engine.reset(scope, seed=self.config.seed)
        self.reset_state(scope)
        if scope is None:
            self._install_rules()

    def reconfigure(self, config: ConfigT) -> None:
        self.config = config
        self.engine.decisions.reset(everything=True, seed=config.seed)
        self.engine.journal.resize(config.journal_size)
        self.engine.clear(None)
        self._install_rules()

    def authorized(self) -> bool:
        authorization = request.headers.get("Authorization", "")
        return authorization.startswith("Bearer ") and authorization[7:] in self.config.api_keys

    def api_key(self) -> str:
        return request.headers.get("Authorization", "")[7:]

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Background work (webhook deliveries) that is cancelled when the simulator stops."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop_background_work(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def create_app(self) -> FaultInjectionMiddleware:
        app = Quart(f"simulators.{self.name}", static_folder=None)
        app.register_blueprint(control_blueprint(self), url_prefix=CONTROL_PREFIX.rstrip("/"))
        if (extra := self.controls()) is not None:
            app.register_blueprint(extra, url_prefix=CONTROL_PREFIX.rstrip("/"))
        app.register_blueprint(self.routes())
        app.register_error_handler(ControlError, _control_error)
        app.register_error_handler(InvalidRequestError, _invalid_request)
        app.register_error_handler(HTTPException, _http_error)
        app.before_serving(_freeze_startup_heap)
        app.after_serving(self.stop_background_work)
        return FaultInjectionMiddleware(app, self.engine)


async def _freeze_startup_heap() -> None:
    """Keep the modules and models loaded at start out of the collector's full passes (they live forever)."""
    gc.freeze()


async def parse_body(model: type[ModelT]) -> ModelT:
    """The request's body as `model`: a form (Stripe's wire format, what its SDKs send) whose leaves are strings,
    read as the model's types; or JSON, read strictly. Anything else is a Stripe-style 400."""
    if request.mimetype == "application/x-www-form-urlencoded":
        try:
            form = decode_form(
                (await request.get_data(cache=True, as_text=False, parse_form_data=False)).decode("utf-8")
            )
        except (FormError, UnicodeDecodeError) as error:
            raise InvalidRequestError(f"body: {error}", getattr(error, "param", None)) from None
        return parse(model, form, lenient=True)
    return parse(model, await request.get_json(force=True, silent=True))


def parse(model: type[ModelT], data: Any, *, lenient: bool = False) -> ModelT:
    """Provider request parameters as `model`, or a Stripe-style 400. `lenient`: strings may stand for numbers
    and booleans (a query string, a form body)."""
    try:
        return model.model_validate(data, strict=False if lenient else None)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequestError(f"{param or 'body'}: {first['msg']}", param) from None


def parse_control(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid(error) from None


async def _control_error(error: ControlError) -> Response:
    return problem(error.status, "Invalid control request", error.detail, request.path, errors=error.errors)


async def _invalid_request(error: InvalidRequestError) -> Response:
    return stripe_error(400, "invalid_request_error", error.message, param=error.param)


async def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if request.path.startswith(CONTROL_PREFIX):
        return problem(status, error.name, error.description or error.name, request.path)
    return stripe_error(status, "invalid_request_error", error.description or error.name)

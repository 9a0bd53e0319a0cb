"""The control API under /__sim/: configuration, fault rules, journal, decisions, clock and reset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, jsonify, request

from simulators.engine.journal import JournalFilter
from simulators.engine.problems import ControlError
from simulators.engine.rules import RuleSpec

if TYPE_CHECKING:
    from simulators.engine.engine import FaultEngine
    from simulators.engine.simulator import Simulator


class JournalQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    method: str | None = None
    scope: str | None = None
    header: str | None = Field(default=None, pattern=r"^[^:]+:.*$", description="name:value")
    since: float | None = None
    status: int | None = None
    limit: int | None = Field(default=None, ge=1)

    def where(self) -> JournalFilter:
        header = None
        if self.header is not None:
            name, _, value = self.header.partition(":")
            header = (name.strip().lower(), value.strip())
        return JournalFilter(
            path=self.path, method=self.method, scope=self.scope, header=header, since=self.since, status=self.status
        )


class ClockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frozen: bool
    at: float | None = Field(default=None, description="With frozen: the time to stop at (unix seconds).")


class ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=10 * 365 * 86400)


class ScopeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str | None = None


def _query(model: type[Any]) -> Any:
    from simulators.engine.simulator import parse_control

    return parse_control(model, request.args.to_dict())


async def _body(model: type[Any]) -> Any:
    from simulators.engine.simulator import parse_control

    data = await request.get_json(force=True, silent=True)
    if data is None:
        raise ControlError(400, "The body must be a JSON object.")
    return parse_control(model, data)


def control_blueprint(simulator: Simulator[Any]) -> Blueprint:
    blueprint = Blueprint("control", __name__)
    _configuration_routes(blueprint, simulator)
    _observation_routes(blueprint, simulator.engine)
    _clock_routes(blueprint, simulator)
    return blueprint


def _configuration_routes(blueprint: Blueprint, simulator: Simulator[Any]) -> None:
    engine = simulator.engine

    @blueprint.get("/config")
    async def get_config() -> Response:
        return jsonify(simulator.config.model_dump(mode="json"))

    @blueprint.put("/config")
    async def put_config() -> Response:
        simulator.reconfigure(await _body(simulator.config_model))
        return jsonify(simulator.config.model_dump(mode="json"))

    @blueprint.post("/faults")
    async def add_fault() -> tuple[Response, int]:
        rule = engine.add(await _body(RuleSpec))
        return jsonify(rule.model_dump(mode="json")), 201

    @blueprint.get("/faults")
    async def list_faults() -> Response:
        scope = _query(ScopeQuery).scope
        return jsonify({"faults": [rule.model_dump(mode="json") for rule in engine.rules(scope)]})

    @blueprint.delete("/faults/<rule_id>")
    async def remove_fault(rule_id: str) -> tuple[str, int]:
        if not engine.remove(rule_id):
            raise ControlError(404, f"There is no fault rule {rule_id}.")
        return "", 204

    @blueprint.delete("/faults")
    async def clear_faults() -> tuple[str, int]:
        engine.clear(_query(ScopeQuery).scope)
        return "", 204


def _observation_routes(blueprint: Blueprint, engine: FaultEngine) -> None:
    @blueprint.get("/journal")
    async def journal() -> Response:
        query: JournalQuery = _query(JournalQuery)
        entries = engine.journal.query(query.where(), query.limit)
        return jsonify({"entries": [entry.as_dict() for entry in entries]})

    @blueprint.get("/journal/count")
    async def journal_count() -> Response:
        query: JournalQuery = _query(JournalQuery)
        return jsonify({"count": engine.journal.count(query.where())})

    @blueprint.delete("/journal")
    async def clear_journal() -> tuple[str, int]:
        engine.journal.clear(_query(ScopeQuery).scope)
        return "", 204

    @blueprint.get("/decisions")
    async def decisions() -> Response:
        scope = _query(ScopeQuery).scope
        log = [decision.as_dict() for decision in engine.decisions.log(scope)]
        return jsonify({"seed": engine.decisions.seed, "scope": scope, "decisions": log})


def _clock_routes(blueprint: Blueprint, simulator: Simulator[Any]) -> None:
    engine = simulator.engine

    def clock_state(scope: str | None) -> Response:
        return jsonify({"now": engine.clock.now(scope), "frozen": engine.clock.frozen(scope), "scope": scope})

    @blueprint.get("/clock")
    async def get_clock() -> Response:
        return clock_state(_query(ScopeQuery).scope)

    @blueprint.put("/clock")
    async def set_clock() -> Response:
        scope = _query(ScopeQuery).scope
        change: ClockChange = await _body(ClockChange)
        if change.frozen:
            engine.clock.freeze(change.at, scope)
        elif change.at is not None:
            raise ControlError(400, "`at` goes with frozen: true.")
        else:
            engine.clock.resume(scope)
        return clock_state(scope)

    @blueprint.post("/clock/advance")
    async def advance_clock() -> Response:
        scope = _query(ScopeQuery).scope
        engine.clock.advance((await _body(ClockAdvance)).seconds, scope)
        return clock_state(scope)

    @blueprint.post("/reset")
    async def reset() -> tuple[str, int]:
        simulator.reset(_query(ScopeQuery).scope)
        return "", 204

"""Typed control clients for the simulators: async (tests) and sync (Locust and other sync tooling).

    async with SimulatorClient(url, scope="test-42") as sim:
        async with sim.fault(route="/v1/charges", status=503, times=2):
            ...  # the fault rule is removed on exit

Both clients build the same `Call`s; only how they are sent differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp
import requests

T = TypeVar("T")
Json = dict[str, Any]


class SimulatorError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"simulator answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


def _nothing(_: Any) -> None:
    return None


def _params(**values: Any) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def _fault_spec(
    scope: str | None,
    *,
    route: str,
    action: Mapping[str, Any] | None,
    status: int | None,
    retry_after: float | None,
    method: str | None,
    probability: float,
    times: int | None,
    first_attempts_per_key: int | None,
    ttl_seconds: float | None,
) -> Json:
    if (action is None) == (status is None):
        raise ValueError("give either status=... or action={...}")
    chosen = dict(action) if action is not None else {"kind": "status", "status": status, "retry_after": retry_after}
    spec: Json = {"route": route, "action": chosen, "probability": probability}
    optional = {
        "scope": scope,
        "method": method,
        "times": times,
        "first_attempts_per_key": first_attempts_per_key,
        "ttl_seconds": ttl_seconds,
    }
    spec.update({name: value for name, value in optional.items() if value is not None})
    return spec


class _Calls:
    """The control API as `Call`s, scoped to `scope` where the API takes one."""

    def __init__(self, scope: str | None) -> None:
        self.scope = scope

    def add_fault(self, spec: Json) -> Call[Json]:
        return Call("POST", "/__sim/faults", read=dict, json=spec)

    def remove_fault(self, rule_id: str) -> Call[None]:
        return Call("DELETE", f"/__sim/faults/{rule_id}", read=_nothing)

    def faults(self) -> Call[list[Json]]:
        return Call("GET", "/__sim/faults", read=lambda body: body["faults"], params=_params(scope=self.scope))

    def clear_faults(self) -> Call[None]:
        return Call("DELETE", "/__sim/faults", read=_nothing, params=_params(scope=self.scope))

    def journal(self, count: bool, filters: Mapping[str, Any]) -> Call[Any]:
        params = _params(scope=self.scope, **filters)
        if count:
            return Call("GET", "/__sim/journal/count", read=lambda body: body["count"], params=params)
        return Call("GET", "/__sim/journal", read=lambda body: body["entries"], params=params)

    def clear_journal(self) -> Call[None]:
        return Call("DELETE", "/__sim/journal", read=_nothing, params=_params(scope=self.scope))

    def decisions(self) -> Call[list[Json]]:
        return Call("GET", "/__sim/decisions", read=lambda body: body["decisions"], params=_params(scope=self.scope))

    def clock(self, change: Json | None = None, advance: float | None = None) -> Call[Json]:
        params = _params(scope=self.scope)
        if advance is not None:
            return Call("POST", "/__sim/clock/advance", read=dict, json={"seconds": advance}, params=params)
        return Call("PUT" if change is not None else "GET", "/__sim/clock", read=dict, json=change, params=params)

    def reset(self) -> Call[None]:
        return Call("POST", "/__sim/reset", read=_nothing, params=_params(scope=self.scope))

    def config(self, replacement: Json | None = None) -> Call[Json]:
        return Call("PUT" if replacement is not None else "GET", "/__sim/config", read=dict, json=replacement)

    def register_webhook(self, settings: Json) -> Call[Json]:
        return Call("PUT", "/__sim/webhooks", read=dict, json=settings, params=_params(scope=self.scope))

    def webhook_deliveries(self) -> Call[list[Json]]:
        params = _params(scope=self.scope)
        return Call("GET", "/__sim/webhooks/deliveries", read=lambda body: body["deliveries"], params=params)

    def inbox(self, to: str | None, channel: str | None) -> Call[list[Json]]:
        params = _params(scope=self.scope, to=to, channel=channel)
        return Call("GET", "/__sim/inbox", read=lambda body: body["messages"], params=params)

    def put_product(self, product_id: str, product: Json) -> Call[Json]:
        path = f"/__sim/catalog/products/{product_id}"
        return Call("PUT", path, read=dict, json=product, params=_params(scope=self.scope))

    def remove_product(self, product_id: str) -> Call[None]:
        path = f"/__sim/catalog/products/{product_id}"
        return Call("DELETE", path, read=_nothing, params=_params(scope=self.scope))


class SimulatorClient:
    """Async control client. `scope` binds faults, journal queries, decisions and resets to one X-Sim-Scope."""

    def __init__(self, base_url: str, *, scope: str | None = None, session: aiohttp.ClientSession | None = None):
        self.base_url = base_url.rstrip("/")
        self.calls = _Calls(scope)
        self._session = session
        self._owns_session = session is None

    @property
    def scope(self) -> str | None:
        return self.calls.scope

    @property
    def scope_headers(self) -> dict[str, str]:
        """Headers that put a request to the provider in this client's scope."""
        return {} if self.scope is None else {"X-Sim-Scope": self.scope}

    async def send(self, call: Call[T]) -> T:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(
            call.method, self.base_url + call.path, params=dict(call.params), json=call.json
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise SimulatorError(response.status, text)
            return call.read(await response.json() if text else None)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> SimulatorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def add_fault(
        self,
        *,
        route: str = "*",
        action: Mapping[str, Any] | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        probability: float = 1.0,
        times: int | None = None,
        first_attempts_per_key: int | None = None,
        ttl_seconds: float | None = None,
    ) -> Json:
        spec = _fault_spec(
            self.scope,
            route=route, action=action, status=status, retry_after=retry_after, method=method,
            probability=probability, times=times, first_attempts_per_key=first_attempts_per_key,
            ttl_seconds=ttl_seconds,
        )  # fmt: skip
        return await self.send(self.calls.add_fault(spec))

    @asynccontextmanager
    async def fault(self, **rule: Any) -> AsyncIterator[Json]:
        """A fault rule for the duration of the block (gone already if it fired its `times`)."""
        added = await self.add_fault(**rule)
        try:
            yield added
        finally:
            await self.remove_fault(added["id"])

    async def remove_fault(self, rule_id: str) -> bool:
        try:
            await self.send(self.calls.remove_fault(rule_id))
        except SimulatorError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def faults(self) -> list[Json]:
        return await self.send(self.calls.faults())

    async def clear_faults(self) -> None:
        await self.send(self.calls.clear_faults())

    async def journal(self, **filters: Any) -> list[Json]:
        """Requests received; filters: path (glob), method, header ("name:value"), since, status, limit."""
        entries: list[Json] = await self.send(self.calls.journal(False, filters))
        return entries

    async def journal_count(self, **filters: Any) -> int:
        count: int = await self.send(self.calls.journal(True, filters))
        return count

    async def clear_journal(self) -> None:
        await self.send(self.calls.clear_journal())

    async def decisions(self) -> list[Json]:
        return await self.send(self.calls.decisions())

    async def clock(self) -> Json:
        return await self.send(self.calls.clock())

    async def freeze_clock(self, at: float | None = None) -> Json:
        return await self.send(self.calls.clock({"frozen": True, "at": at}))

    async def advance_clock(self, seconds: float) -> Json:
        return await self.send(self.calls.clock(advance=seconds))

    async def resume_clock(self) -> Json:
        return await self.send(self.calls.clock({"frozen": False}))

    async def reset(self) -> None:
        await self.send(self.calls.reset())

    async def config(self) -> Json:
        return await self.send(self.calls.config())

    async def put_config(self, config: Json) -> Json:
        return await self.send(self.calls.config(config))

    async def register_webhook(self, url: str, **settings: Any) -> Json:
        return await self.send(self.calls.register_webhook({"url": url, **settings}))

    async def webhook_deliveries(self) -> list[Json]:
        return await self.send(self.calls.webhook_deliveries())

    async def inbox(self, to: str | None = None, channel: str | None = None) -> list[Json]:
        return await self.send(self.calls.inbox(to, channel))

    async def put_product(self, product_id: str, **product: Any) -> Json:
        return await self.send(self.calls.put_product(product_id, product))

    async def remove_product(self, product_id: str) -> None:
        await self.send(self.calls.remove_product(product_id))


class SyncSimulatorClient:
    """The same control API over `requests`, for Locust (gevent) and scripts."""

    def __init__(self, base_url: str, *, scope: str | None = None, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.calls = _Calls(scope)
        self._http = requests.Session()
        self._timeout = timeout

    @property
    def scope_headers(self) -> dict[str, str]:
        return {} if self.calls.scope is None else {"X-Sim-Scope": self.calls.scope}

    def send(self, call: Call[T]) -> T:
        response = self._http.request(
            call.method, self.base_url + call.path, params=dict(call.params), json=call.json, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise SimulatorError(response.status_code, response.text)
        return call.read(response.json() if response.content else None)

    def close(self) -> None:
        self._http.close()

    def add_fault(self, **rule: Any) -> Json:
        defaults: Json = {"route": "*", "action": None, "status": None, "retry_after": None, "method": None}
        defaults |= {"probability": 1.0, "times": None, "first_attempts_per_key": None, "ttl_seconds": None}
        return self.send(self.calls.add_fault(_fault_spec(self.calls.scope, **(defaults | rule))))

    @contextmanager
    def fault(self, **rule: Any) -> Iterator[Json]:
        added = self.add_fault(**rule)
        try:
            yield added
        finally:
            try:
                self.send(self.calls.remove_fault(added["id"]))
            except SimulatorError as error:
                if error.status != 404:
                    raise

    def clear_faults(self) -> None:
        self.send(self.calls.clear_faults())

    def journal_count(self, **filters: Any) -> int:
        count: int = self.send(self.calls.journal(True, filters))
        return count

    def reset(self) -> None:
        self.send(self.calls.reset())

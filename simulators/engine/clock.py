"""The simulators' clock: real time by default; frozen or moved forward through the control API, for the whole
simulator or for one scope alone (so a test that travels in time does not move its neighbours)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Time:
    offset: float = 0.0
    frozen_at: float | None = None

    def now(self) -> float:
        return self.frozen_at if self.frozen_at is not None else time.time() + self.offset


class SimClock:
    def __init__(self) -> None:
        self._global = _Time()
        self._scopes: dict[str, _Time] = {}
        self._listeners: list[Callable[[str | None], None]] = []

    def _time(self, scope: str | None) -> _Time:
        return self._global if scope is None else self._scopes.get(scope, self._global)

    def _own(self, scope: str | None) -> _Time:
        if scope is None:
            return self._global
        if scope not in self._scopes:
            shared = self._global
            self._scopes[scope] = _Time(shared.offset, shared.frozen_at)
        return self._scopes[scope]

    def now(self, scope: str | None = None) -> float:
        """Unix time in seconds, as the simulator sees it for `scope`."""
        return self._time(scope).now()

    def frozen(self, scope: str | None = None) -> bool:
        return self._time(scope).frozen_at is not None

    def freeze(self, at: float | None = None, scope: str | None = None) -> None:
        own = self._own(scope)
        own.frozen_at = own.now() if at is None else at
        self._changed(scope)

    def advance(self, seconds: float, scope: str | None = None) -> None:
        own = self._own(scope)
        if own.frozen_at is not None:
            own.frozen_at += seconds
        else:
            own.offset += seconds
        self._changed(scope)

    def resume(self, scope: str | None = None) -> None:
        """Run again from where it stands (a frozen clock keeps its lead over real time)."""
        own = self._own(scope)
        if own.frozen_at is not None:
            own.offset = own.frozen_at - time.time()
            own.frozen_at = None
        self._changed(scope)

    def reset(self, scope: str | None = None) -> None:
        """Back to real time: one scope's clock, or (with no scope) every clock."""
        if scope is None:
            self._global = _Time()
            self._scopes.clear()
        else:
            self._scopes.pop(scope, None)
        self._changed(scope)

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        """`listener(scope)` runs after every change (None: the shared clock), to settle what has come due."""
        self._listeners.append(listener)

    def _changed(self, scope: str | None) -> None:
        for listener in self._listeners:
            listener(scope)

"""Every request a simulator received, in a bounded ring, to query and count from tests and load runs."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

MAX_BODY_CHARS = 16_384


@dataclass(slots=True)
class JournalEntry:
    seq: int
    time: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    scope: str | None
    fault: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JournalFilter:
    path: str | None = None
    method: str | None = None
    scope: str | None = None
    header: tuple[str, str] | None = None
    since: float | None = None
    status: int | None = None

    def admits(self, entry: JournalEntry) -> bool:
        return (
            (self.scope is None or entry.scope == self.scope)
            and (self.method is None or entry.method == self.method)
            and (self.path is None or fnmatchcase(entry.path, self.path))
            and (self.since is None or entry.time >= self.since)
            and (self.status is None or entry.status == self.status)
            and (self.header is None or entry.headers.get(self.header[0]) == self.header[1])
        )


class Journal:
    def __init__(self, size: int) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=size)
        self._seq = itertools.count(1)

    def record(
        self,
        *,
        time: float,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        scope: str | None,
    ) -> JournalEntry:
        entry = JournalEntry(
            seq=next(self._seq),
            time=time,
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body[:MAX_BODY_CHARS].decode(errors="replace"),
            scope=scope,
        )
        self._entries.append(entry)
        return entry

    def query(self, where: JournalFilter, limit: int | None = None) -> list[JournalEntry]:
        found = [entry for entry in self._entries if where.admits(entry)]
        return found[-limit:] if limit else found

    def count(self, where: JournalFilter) -> int:
        return sum(1 for entry in self._entries if where.admits(entry))

    def clear(self, scope: str | None = None) -> None:
        if scope is None:
            self._entries.clear()
        else:
            kept: Iterable[JournalEntry] = [entry for entry in self._entries if entry.scope != scope]
            self._entries = deque(kept, maxlen=self._entries.maxlen)

    def resize(self, size: int) -> None:
        self._entries = deque(self._entries, maxlen=size)

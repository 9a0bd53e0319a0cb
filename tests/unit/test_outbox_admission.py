"""The outbox's bound as the service applies it (app/src/api/messaging/outbox.py), over a table of a few lines:
when work is admitted the count is taken at most once a second, and a best-effort message past the bound is
counted and logged rather than added."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from app.src.api.common.errors import UnavailableError
from app.src.api.messaging import outbox as outbox_module
from app.src.api.messaging.outbox import ADMIT_CHECK_SECONDS, Outbox
from app.src.database.outbox import Message
from app.src.utils.logs import configure_logging

ALERT = Message(kind="login_alert", about="user:7", payload={"to": "a@example.org"}, idempotency_key="alert-7")


@dataclass
class Table:
    """Messages waiting: `waiting`; every count asked for and every message added, in order."""

    waiting: int = 0
    added_answer: bool = True
    asked: list[int] = field(default_factory=list)
    added: list[Message] = field(default_factory=list)

    async def waiting_at_least(self, count: int) -> bool:
        self.asked.append(count)
        return self.waiting >= count

    async def add(self, message: Message) -> bool:
        self.added.append(message)
        return self.added_answer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic clock the outbox reads: set `clock[0]`."""
    now = [1000.0]
    monkeypatch.setattr(outbox_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def refused(registry: CollectorRegistry, kind: str) -> float | None:
    return registry.get_sample_value("outbox_refused_total", {"kind": kind})


@pytest.mark.requirement("NFR-3")
async def test_a_full_outbox_refuses_work_with_503_words_and_a_ten_second_wait(clock: list[float]) -> None:
    table = Table(waiting=3)
    with pytest.raises(UnavailableError) as refusal:
        await Outbox(3, CollectorRegistry()).admit(table)
    assert (refusal.value.detail, refusal.value.retry_after, refusal.value.code) == (
        "Too many messages wait to be sent; try again shortly.",
        10,
        "outbox-full",
    )
    assert table.asked == [3]  # counted up to the bound, no further


async def test_the_count_is_taken_at_most_once_a_second_and_its_answer_holds_meanwhile(clock: list[float]) -> None:
    outbox, table = Outbox(3, CollectorRegistry()), Table(waiting=2)
    await outbox.admit(table)  # the first admission counts, whatever the clock says
    table.waiting = 3
    clock[0] += ADMIT_CHECK_SECONDS / 2
    await outbox.admit(table)  # full by now, but the last count (not full) holds for a second
    assert table.asked == [3]
    clock[0] += ADMIT_CHECK_SECONDS / 2  # a second exactly (halves of 1.0 add up exactly)
    with pytest.raises(UnavailableError):
        await outbox.admit(table)
    assert table.asked == [3, 3]
    clock[0] += ADMIT_CHECK_SECONDS / 2
    with pytest.raises(UnavailableError):  # and the full answer holds too
        await outbox.admit(table)
    assert table.asked == [3, 3]
    table.waiting = 0
    clock[0] += ADMIT_CHECK_SECONDS / 2
    await outbox.admit(table)
    assert table.asked == [3, 3, 3]
    assert table.added == []  # admitting adds nothing


async def test_a_message_of_an_effect_already_made_is_added_whatever_the_bound() -> None:
    table = Table(waiting=50)
    await Outbox(3, CollectorRegistry()).add(table, ALERT)
    assert (table.added, table.asked) == ([ALERT], [])


@pytest.mark.requirement("NFR-3")
@pytest.mark.usefixtures("logs_back_to_stdout")
async def test_a_best_effort_message_past_the_bound_is_not_added_but_counted_and_logged() -> None:
    lines = io.StringIO()
    configure_logging("INFO", "json", stream=lines)
    registry, table = CollectorRegistry(), Table(waiting=2)
    outbox = Outbox(2, registry)
    assert await outbox.offer(table, ALERT) is False
    assert (table.added, table.asked) == ([], [2])
    assert refused(registry, "login_alert") == 1
    assert refused(registry, "email_confirmation") is None  # counted by the kind refused
    [line] = map(json.loads, lines.getvalue().splitlines())
    assert (line["event"], line["level"], line["logger"], line["kind"], line["about"]) == (
        "outbox full: best-effort message not sent",
        "warning",
        "outbox",
        "login_alert",
        "user:7",
    )


async def test_a_best_effort_message_under_the_bound_is_added_and_says_whether_it_was_new() -> None:
    registry, table = CollectorRegistry(), Table(waiting=1)
    outbox = Outbox(2, registry)
    assert await outbox.offer(table, ALERT) is True
    table.added_answer = False  # one with its idempotency key was there already
    assert await outbox.offer(table, ALERT) is False
    assert (table.added, table.asked) == ([ALERT, ALERT], [2, 2])
    assert refused(registry, "login_alert") is None


def test_the_refusals_counter_is_described_and_goes_with_unregister() -> None:
    registry = CollectorRegistry()
    outbox = Outbox(2, registry)
    [family] = [metric for metric in registry.collect() if metric.name == "outbox_refused"]
    assert family.documentation == "Best-effort messages not added because the outbox was full"
    outbox.unregister(registry)
    assert [metric.name for metric in registry.collect()] == []
    Outbox(2, registry)  # the name is free again: a second service in the same process registers it anew

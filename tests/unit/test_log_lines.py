"""The hot-path logger writes the line structlog would, honours the level, and never fails its caller."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from app.src.utils.logs import configure_logging, get_logger, module_logger, request_id_var

pytestmark = pytest.mark.usefixtures("logs_back_to_stdout")  # each test points logging at a stream of its own


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.requirement("NFR-6")
def test_a_hot_path_line_has_the_keys_and_values_of_a_structlog_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    token = request_id_var.set("req-lines")
    try:
        get_logger("provider", provider="payments").info("provider attempt", attempt=2, result="503", ms=1.5)
        structlog.get_logger().bind(logger="provider", provider="payments").info(
            "provider attempt", attempt=2, result="503", ms=1.5
        )
    finally:
        request_id_var.reset(token)
    hot, reference = lines_of(stream.getvalue())
    assert abs(hot.pop("timestamp") - time.time()) < 60  # seconds since the epoch
    reference.pop("timestamp")
    assert hot == reference
    assert hot == {"logger": "provider", "provider": "payments", "attempt": 2, "result": "503", "ms": 1.5,
                   "event": "provider attempt", "level": "info", "request_id": "req-lines"}  # fmt: skip


def test_console_lines_show_the_time_for_people() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    structlog.get_logger().info("started")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info", stream.getvalue()), stream.getvalue()


def test_lines_below_the_configured_level_are_not_written() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", "json", stream=stream)
    log = get_logger("access")
    log.debug("quiet")
    log.info("quiet")
    log.warning("heard", status=503)
    log.error("heard", status=500)
    assert [(line["level"], line["event"]) for line in lines_of(stream.getvalue())] == [
        ("warning", "heard"),
        ("error", "heard"),
    ]


def test_the_fields_of_the_call_win_over_the_bound_ones_and_errors_are_formatted() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError as error:
        get_logger("provider", provider="bound").error("failed", provider="called", exc_info=error)
    (line,) = lines_of(stream.getvalue())
    assert line["provider"] == "called"
    assert "ValueError: boom" in line["exception"]


def test_a_stream_with_a_file_descriptor_gets_whole_lines_in_order(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("w") as stream:
        configure_logging("INFO", "json", stream=stream)
        log = get_logger("access")
        for index in range(100):
            log.info("request", index=index, padding="x" * index)
    assert [line["index"] for line in lines_of(path.read_text())] == list(range(100))


def test_a_reader_that_went_away_loses_the_line_not_the_call() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        configure_logging("INFO", "json", stream=stream)
        get_logger("access").info("request", status=200)  # EPIPE (Python ignores SIGPIPE): dropped


def test_a_closed_stream_gets_nothing_even_when_its_descriptor_is_reused(tmp_path: Path) -> None:
    stream = (tmp_path / "closed.jsonl").open("w")
    configure_logging("INFO", "json", stream=stream)
    log = get_logger("access")
    descriptor = stream.fileno()
    stream.close()
    with (tmp_path / "other.txt").open("w") as other:
        reused = other.fileno() == descriptor
        log.info("request", status=200)
    assert (tmp_path / "other.txt").read_text() == ""
    assert reused  # the hazard was real: the new file had the logger's old descriptor


@pytest.mark.parametrize("kind", ["in memory", "a file"])
def test_a_line_to_a_stream_closed_under_the_logger_is_lost_not_raised_into_its_caller(
    kind: str, tmp_path: Path
) -> None:
    stream = io.StringIO() if kind == "in memory" else (tmp_path / "closed.jsonl").open("w")
    configure_logging("INFO", "json", stream=stream)
    stream.close()  # as pytest closes the capture a test's logging was pointed at, or a collector goes away
    module_logger("outbox").error("outbox message dead-lettered", message_id=1)
    get_logger("access").info("request", status=200)
    logging.getLogger("uvicorn.error").error("a library's line")

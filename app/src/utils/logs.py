"""JSON log lines: structlog for most, the standard library's loggers (uvicorn, SQLAlchemy, alembic) rendered through
the same chain, and a direct writer of the same lines for the hot paths (a line per request, per provider attempt)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from typing import Any, Literal, Protocol, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error", "fatal": "critical"}


def _stamp(_: WrappedLogger, method_name: str, event: EventDict) -> EventDict:
    """Level, time and request id in one step. The time is seconds since the Unix epoch, as zap's production
    encoder and structlog's default write it: an aware datetime and its rendering cost a provider call about
    as much again as the rest of its line (console lines show ISO 8601 for people)."""
    event["level"] = _LEVEL_OF_METHOD.get(method_name, method_name)
    event["timestamp"] = time.time()
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _json_line(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def _stamp_with_error(logger: WrappedLogger, method_name: str, event: EventDict) -> EventDict:
    """`_stamp`, and an `exc_info` rendered as text: everything a JSON line holds besides its own fields."""
    event = _stamp(logger, method_name, event)
    if "exc_info" in event:
        event = structlog.processors.format_exc_info(logger, method_name, event)
    return event


def _stamp_and_render(logger: WrappedLogger, method_name: str, event: EventDict) -> str:
    """The whole JSON chain as one processor: each processor is a call per line, and hot paths log per call."""
    return _json_line(_stamp_with_error(logger, method_name, event))


def configure_logging(level: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    sink = _LineSink(stream)
    _Configured.sink, _Configured.level, _Configured.json = (
        sink,
        logging.getLevelNamesMapping()[level],
        log_format == "json",
    )
    readable_time = structlog.processors.TimeStamper(fmt="iso", utc=True)
    processors: list[Processor] = (
        [_stamp_and_render]
        if log_format == "json"
        else [_stamp, readable_time, structlog.processors.format_exc_info, structlog.dev.ConsoleRenderer(colors=False)]
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=lambda *_: _SinkLogger(sink),
        cache_logger_on_first_use=False,
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, _stamp]
            + ([] if log_format == "json" else [readable_time]),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "sqlalchemy.engine", "asyncio", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class _ModuleLogger:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(structlog.get_logger().bind(logger=self._name), method)


def module_logger(name: str) -> Any:
    """For a module's rare log lines: resolved against the configuration in force at each call, so a logger
    made at import time, before `configure_logging`, still writes what was configured."""
    return _ModuleLogger(name)


class LineLogger(Protocol):
    def debug(self, event: str, **fields: Any) -> Any: ...
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...


_WRITING = threading.Lock()
_LINE_OPTIONS = orjson.OPT_APPEND_NEWLINE
_THRESHOLDS = (("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING), ("error", logging.ERROR))


class _LineSink:
    """Where hot-path lines go: straight to the stream's file descriptor when it has one (no text encoding and no
    two layers of buffers to flush per line), else through the stream. The standard library's handler flushes
    after every record, so lines written either way stay in order."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.StringIO and other in-memory streams
            self._fd = None

    def write(self, line: bytes) -> None:
        if self._fd is None:
            with _WRITING:
                if self._stream.closed:
                    return
                self._stream.write(line.decode())
                self._stream.flush()
            return
        if self._stream.closed:
            return  # its descriptor may already belong to another file
        try:  # one system call per line: the kernel keeps whole writes apart, so threads need no lock here
            written = os.write(self._fd, line)
            while written < len(line):  # a write cut short by a signal
                written += os.write(self._fd, line[written:])
        except OSError:
            return  # the reader is gone or not keeping up (a non-blocking pipe): lose the line, not the request


class _SinkLogger:
    """structlog's logger: its rendered lines go through the sink, which loses a line rather than fail the caller
    (structlog's own WriteLogger raised into a dispatcher's round when the stream had been closed under it)."""

    def __init__(self, sink: _LineSink) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.write(message.encode() + b"\n")

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class _Configured:
    """What `configure_logging` set last, for the hot-path loggers that `get_logger` builds."""

    sink: _LineSink | None = None
    level = logging.INFO
    json = True


class _JsonLines:
    """The line structlog would write (the same keys and rendering), made by one orjson call and written by one
    system call. structlog's own steps (bound-logger wrapper, context copy, processor loop) and the text stream's
    encoding and flushes cost more than the line itself; this runs per request and per provider attempt."""

    debug: Callable[..., None]
    info: Callable[..., None]
    warning: Callable[..., None]
    error: Callable[..., None]

    def __init__(self, sink: _LineSink, level: int, context: dict[str, Any]) -> None:
        self._write = sink.write
        self._context = context
        for method, threshold in _THRESHOLDS:
            setattr(self, method, partial(self._line, method) if threshold >= level else _ignore)

    def _line(self, level: str, event: str, **fields: Any) -> None:
        line: EventDict = self._context | fields  # as in structlog, the call's fields win over the bound ones
        line["event"] = event
        line = _stamp_with_error(None, level, line)
        self._write(orjson.dumps(line, default=repr, option=_LINE_OPTIONS))


def _ignore(event: str, **fields: Any) -> None:
    return None


def get_logger(name: str, **context: Any) -> LineLogger:
    """For hot paths: a logger resolved once against the configuration in force now (make it after
    `configure_logging`, as the app factory does). In JSON it writes without structlog's chain."""
    if _Configured.json and _Configured.sink is not None:
        return _JsonLines(_Configured.sink, _Configured.level, {"logger": name, **context})
    logger: LineLogger = structlog.get_logger(name).bind(logger=name, **context)
    return logger

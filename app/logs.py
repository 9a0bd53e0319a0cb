"""structlog JSON logs; the standard library's loggers (uvicorn, SQLAlchemy, alembic) render through the same chain."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from .settings import LogFormat

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error", "fatal": "critical"}


def _stamp(_: WrappedLogger, method_name: str, event: EventDict) -> EventDict:
    """Level, time and request id in one step (every log line pays for it; orjson renders the datetime)."""
    event["level"] = _LEVEL_OF_METHOD.get(method_name, method_name)
    event["timestamp"] = dt.datetime.now(dt.UTC)
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _json_line(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=repr, option=orjson.OPT_UTC_Z).decode()


def configure_logging(level: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    shared: list[Processor] = [_stamp]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
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


def get_logger(name: str, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    """For hot paths: a concrete bound logger, resolved once against the configuration in force now (make it
    after `configure_logging`, as the app factory does)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name).bind(logger=name, **initial)
    return logger

"""For `python -m app dev`: the worker as a process of its own, on the same database and providers as the API."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from app.runtime.shutdown import signals_held
from app.settings import PROVIDERS, Settings

STOP_TIMEOUT = 30.0


def _environment(settings: Settings) -> dict[str, str]:
    environment = {**os.environ, "PROFILE": "dev", "LOG_FORMAT": settings.log_format, "LOG_LEVEL": settings.log_level}
    if settings.db_uri is not None:
        environment["DB_URI"] = settings.db_uri.get_secret_value()
    for name in PROVIDERS:
        provider = settings.provider(name)
        if provider.url is not None:
            environment[f"{name.upper()}_URL"] = provider.url
        if provider.api_key is not None:
            environment[f"{name.upper()}_API_KEY"] = provider.api_key
    return environment


@contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m app worker` beside the API until the block ends (then stopped as a deployment stops it)."""
    process = subprocess.Popen([sys.executable, "-m", "app", "worker"], env=_environment(settings))
    try:
        yield process
    finally:
        with signals_held():
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

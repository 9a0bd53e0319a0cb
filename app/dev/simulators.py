"""For `python -m app dev`: the provider simulators as processes of their own (the service never imports them)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from app.runtime.shutdown import signals_held
from app.settings import PROVIDERS, Settings

SIMULATOR_API_KEY = "sk_test_proving_ground"
SIMULATOR_WEBHOOK_SECRET = "whsec_proving_ground"  # noqa: S105 - the simulators' published default
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _wait_until_listening(process: subprocess.Popen[bytes], name: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"the {name} simulator exited with {process.returncode} (is port {port} taken?)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {name} simulator did not listen on port {port} within {START_TIMEOUT:g} s")
        time.sleep(0.05)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Ask them all to stop at once, then wait for each (killing what outlasts STOP_TIMEOUT)."""
    with signals_held():
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def simulated_providers(settings: Settings) -> Iterator[Settings]:
    """Start a simulator for every provider whose URL is not set; yield the settings pointing at them."""
    ports = {name: settings.simulator_base_port + offset for offset, name in enumerate(PROVIDERS)}
    wanted = [name for name in PROVIDERS if settings.provider(name).url is None]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in wanted:  # all at once: each spends most of its start-up importing
            command = [sys.executable, "-m", "simulators", name, "--port", str(ports[name])]
            processes.append(subprocess.Popen(command))  # noqa: S603 - our own interpreter and module
        for name, process in zip(wanted, processes, strict=True):
            _wait_until_listening(process, name, ports[name])
        updates: dict[str, object] = {}
        for name in wanted:
            updates[f"{name}_url"] = f"http://127.0.0.1:{ports[name]}"
            updates[f"{name}_api_key"] = SecretStr(SIMULATOR_API_KEY)
        if "payments" in wanted and settings.payments_webhook_secrets is None:
            updates["payments_webhook_secrets"] = SecretStr(SIMULATOR_WEBHOOK_SECRET)
        yield settings.model_copy(update=updates)
    finally:
        _stop(processes)

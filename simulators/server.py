"""Serving a simulator: as its own process (`python -m simulators ...`) or in-process on a thread of its own."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn

from simulators.catalog.app import CatalogConfig, CatalogSimulator
from simulators.engine.simulator import Simulator
from simulators.engine.transport import TransportExposingProtocol
from simulators.notify.app import NotifyConfig, NotifySimulator
from simulators.payments.app import PaymentsSimulator
from simulators.payments.models import PaymentsConfig

SIMULATORS: dict[str, tuple[type[Simulator[Any]], type[Any]]] = {
    "payments": (PaymentsSimulator, PaymentsConfig),
    "catalog": (CatalogSimulator, CatalogConfig),
    "notify": (NotifySimulator, NotifyConfig),
}
DEFAULT_PORTS = {"payments": 9101, "catalog": 9102, "notify": 9103}


def build(name: str, config: dict[str, Any] | None = None) -> Simulator[Any]:
    simulator_class, config_class = SIMULATORS[name]
    return simulator_class(config_class.model_validate(config or {}))


def uvicorn_config(simulator: Simulator[Any], host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    return uvicorn.Config(
        simulator.create_app(),
        host=host,
        port=port,
        http=TransportExposingProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._ready.set()


class BackgroundSimulator:
    """A simulator served on 127.0.0.1 and a free port, on a thread and event loop of its own."""

    def __init__(self, simulator: Simulator[Any]) -> None:
        self.simulator = simulator
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._ready = threading.Event()
        self._server = _Server(uvicorn_config(simulator), self._ready)
        self._thread = threading.Thread(target=self._run, name=f"simulator-{simulator.name}", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout: float = 30) -> BackgroundSimulator:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the {self.simulator.name} simulator did not start within {timeout} s")
        return self

    def stop(self, timeout: float = 30) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

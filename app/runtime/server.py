"""uvicorn around the app: TLS from settings, graceful shutdown on SIGTERM and Ctrl-C."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from quart import Quart

from app.runtime.edge import EdgeLimits, EdgeShedding, edge_protocol
from app.settings import Settings
from app.src.resilience.inbound import INBOUND_EXTENSION, Inbound

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _StopOnce:
    """The stop signal, as uvicorn passes it on after its graceful shutdown, ends the server with exit status 0; any
    later one is ignored from then on, so the clean-up after it runs to its end.

    Without it, asyncio's runner turns a second Ctrl-C that lands while the event loop closes into a
    KeyboardInterrupt inside the loop's own teardown ("Cannot close a running event loop", exit status 1), and
    SIGTERM's default would kill the process before the caller's clean-up (the embedded PostgreSQL) ran.
    """

    def __init__(self) -> None:
        self.received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        raise SystemExit(0)


def run_server(app: Quart, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight requests (at most SHUTDOWN_TIMEOUT) and leave with
    SystemExit(0); stop signals are ignored after that (see _StopOnce)."""
    limits = EdgeLimits(
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        head_timeout=settings.head_timeout,
        connections_per_peer=settings.connections_per_peer,
        trusted_proxies=settings.trusted_proxies,
    )
    inbound: Inbound | None = app.extensions.get(INBOUND_EXTENSION)
    shedding = None
    if inbound is not None:
        shedding = EdgeShedding(inbound, settings.inbound_queue, settings.inbound_retry_after)
    config = uvicorn.Config(
        app,
        http=edge_protocol(limits, shedding),
        host=settings.listen_host,
        port=settings.listen_port,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    stop = _StopOnce()
    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        uvicorn.Server(config).run()
    finally:
        if not stop.received:
            for number, handler in previous.items():
                signal.signal(number, handler)

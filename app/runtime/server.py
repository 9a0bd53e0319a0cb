"""uvicorn around the app: TLS from settings, graceful shutdown on SIGTERM and Ctrl-C."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from quart import Quart

from app.runtime.edge import EdgeLimits, edge_protocol
from app.settings import Settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_server(app: Quart, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight requests (at most SHUTDOWN_TIMEOUT) and return.

    uvicorn re-raises the signal after its graceful shutdown; for SIGTERM that would kill the process before the
    caller's cleanup (the embedded PostgreSQL) runs, so SIGTERM becomes SystemExit(0) instead.
    """
    limits = EdgeLimits(
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        head_timeout=settings.head_timeout,
        connections_per_peer=settings.connections_per_peer,
        trusted_proxies=settings.trusted_proxies,
    )
    config = uvicorn.Config(
        app,
        http=edge_protocol(limits),
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
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)

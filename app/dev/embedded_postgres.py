"""A real PostgreSQL from the `pgserver` wheel, for dev and test when no DB_URI is given."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.runtime.shutdown import signals_held


class EmbeddedPostgres:
    """Shared by every process that opens the same data directory; the last one to stop it stops the server."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp, which is fine.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import pgserver

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        return self.uri

    @property
    def uri(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.cleanup()


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    server = EmbeddedPostgres(data_dir)
    uri = server.start()
    try:
        yield uri
    finally:
        with signals_held():
            server.stop()

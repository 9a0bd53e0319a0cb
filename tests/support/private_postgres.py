"""A PostgreSQL server of a test's own, which the test may stop and start (the shared one must stay up)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import pgserver
    from pgserver._commands import pg_ctl


class PrivatePostgres:
    def __init__(self, server: Any) -> None:
        self._server = server

    @property
    def uri(self) -> str:
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)

    def start(self) -> None:
        with self._server._lock:
            self._server.ensure_postgres_running()


@contextmanager
def private_postgres(data_dir: Path) -> Iterator[PrivatePostgres]:
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield PrivatePostgres(server)
    finally:
        server.cleanup()

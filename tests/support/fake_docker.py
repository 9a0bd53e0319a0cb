"""A Docker engine that answers on a unix socket like one whose registry is out of reach: it pings, it has no
images, and every pull fails as dockerd's does when no registry answers. It records what it was asked."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

API_VERSION = "1.41"
NO_REGISTRY = 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host'


class _Engine(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, body: Any) -> None:
        payload = b"OK" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if body is None else "application/json")
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append(f"{self.command} {self.path}")
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            self._answer(200, None)
        elif path.endswith("/version"):
            self._answer(200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Version": "20.10.24"})
        elif "/images/" in path and path.endswith("/json"):
            image = unquote(path.split("/images/")[1].removesuffix("/json"))
            if image in self.server.images:
                self._answer(200, {"Id": "sha256:" + "0" * 64, "RepoTags": [image]})
            else:
                self._answer(404, {"message": f"No such image: {image}"})
        elif path.endswith("/images/create"):
            self._answer(500, {"message": NO_REGISTRY})
        else:
            self._answer(500, {"message": f"the fake engine does not do {self.command} {path}"})

    do_GET = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815 - BaseHTTPRequestHandler's names


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    requests: list[str]
    images: frozenset[str]

    def get_request(self) -> tuple[Any, Any]:
        connection, _ = super().get_request()
        return connection, ("fake-docker", 0)  # BaseHTTPRequestHandler wants an address pair


@contextmanager
def fake_docker_engine(socket_path: Path, images: frozenset[str] = frozenset()) -> Iterator[list[str]]:
    """Serve the fake engine, holding `images`, at `socket_path` (DOCKER_HOST=unix://<it>); yields the requests
    it receives."""
    server = _Server(str(socket_path), _Engine)
    server.requests = []
    server.images = images
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.requests
    finally:
        server.shutdown()
        server.server_close()

"""The service as its own process (`python -m app ...`), as users and containers run it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from app.settings import environment_without_settings

STARTED_LINE = "Uvicorn running on"


def callback_host() -> str:
    """Where a simulator reaches an endpoint of the test's own (a webhook receiver): loopback, unless the simulators
    run elsewhere (a compose topology sets TEST_CALLBACK_HOST=auto: this container's own address)."""
    host = os.environ.get("TEST_CALLBACK_HOST", "127.0.0.1")
    return socket.gethostbyname(socket.gethostname()) if host == "auto" else host


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_port_run(length: int) -> int:
    """The first of `length` consecutive free ports, below the kernel's ephemeral range: a port taken from that
    range may be handed to any other test's socket before the process that asked for it binds it."""
    low = _ephemeral_low()
    for _ in range(200):
        first = random.randrange(10_000, low - length)
        if all(_bindable(first + offset) for offset in range(length)):
            return first
    raise RuntimeError(f"no {length} consecutive free ports found")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def clean_environment(**settings: str) -> dict[str, str]:
    """The parent's environment without any of the service's settings (nor OpenTelemetry's), plus the given ones."""
    return environment_without_settings(os.environ) | settings


def tls_client_context(cert_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_file))


class ServiceProcess:
    """`async with ServiceProcess(["serve"], env, cwd) as service:` waits until uvicorn listens."""

    def __init__(
        self,
        arguments: list[str],
        environment: Mapping[str, str],
        cwd: Path,
        start_timeout: float = 60,
        module: str = "app",
        ready_line: str = STARTED_LINE,
    ) -> None:
        self._module = module
        self._ready_line = ready_line
        self._arguments = arguments
        self._environment = dict(environment)
        self._cwd = cwd
        self._start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    async def __aenter__(self) -> ServiceProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self._module, *self._arguments,
            env=self._environment, cwd=self._cwd, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(self._start_timeout):
            while not any(self._ready_line in line for line in self.output):
                if not await self._read_line():
                    raise RuntimeError("the service exited before listening:\n" + "".join(self.output))
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _read_line(self) -> bool:
        assert self.process is not None
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if line:
            self.output.append(line.decode(errors="replace"))
        return bool(line)

    async def terminate(
        self, grace: float = 30, signal_number: int = signal.SIGTERM, again_at: str | None = None
    ) -> int:
        """SIGTERM (or the given signal), sent once more when a line containing `again_at` appears; then the exit
        code once the process has stopped."""
        assert self.process is not None
        self.process.send_signal(signal_number)
        async with asyncio.timeout(grace):
            reading = True
            while reading:  # keep the output (and the pipe drained) until the process closes it
                reading = await self._read_line()
                if again_at is not None and reading and again_at in self.output[-1]:
                    self.process.send_signal(signal_number)
                    again_at = None
            return await self.process.wait()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is None:
            return
        # Whatever the test left running, children included (they share the process group).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()


@contextlib.contextmanager
def serving_process(environment: Mapping[str, str], cwd: Path, base_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m app serve` until the block ends, for a module's tests to share; it is up once its health answers.
    (A synchronous twin of ServiceProcess, for fixtures wider than one test's event loop.)"""
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=dict(environment), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/api/common/health", timeout=1).close()  # noqa: S310 - loopback
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.1)  # waiting for another process to listen: there is no event to await
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)

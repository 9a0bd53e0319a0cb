"""An open-loop HTTP/1.1 load generator: requests arrive at a fixed rate whatever the answers do (a slow answer
never holds back the next arrival: a new connection is opened when none is idle), and each latency counts from
the arrival's scheduled time, so time the generator itself lost is charged too (no coordinated omission). A pool of
`--warm` connections is opened before the first arrival, as a client's would be when the run is steady state.

    python -m bench.open_loop URL --rate 2000 --seconds 10 --header 'Authorization: Bearer ...' > samples.json

Prints JSON: for each request, [scheduled second, status (0: no answer), latency ms], and the generator's lag (how
late its last arrival went out). Plain asyncio streams, not an HTTP library: about 30 µs of CPU per request, so
one core offers several thousand a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import urlsplit

MAX_CONNECTIONS = 8192
ANSWER_TIMEOUT = 30.0
WARM_CONNECTIONS = 64


class Connections:
    """Idle keep-alive connections to one host, and new ones when none is idle."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        if self.opened >= MAX_CONNECTIONS:
            raise ConnectionError("too many connections")
        self.opened += 1
        return await asyncio.open_connection(self._host, self._port)

    def give_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self._idle.append(connection)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


async def exchange(connections: Connections, request: bytes) -> int:
    """One request on an idle or new connection; its status (the body read and dropped)."""
    reader, writer = await connections.take()
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        writer.close()
        return 0
    if b"connection: close" in head.lower():
        writer.close()
    else:
        connections.give_back((reader, writer))
    return status


async def offer(url: str, rate: float, seconds: float, headers: list[str], warm: int) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1", f"Host: {host}:{port}",
             *headers, "", ""]  # fmt: skip
    request = "\r\n".join(lines).encode()
    connections = Connections(host, port)
    for connection in await asyncio.gather(*(connections.take() for _ in range(warm))):
        connections.give_back(connection)  # open before the clock starts, as a client's pool would be
    samples: list[tuple[float, int, float]] = []
    pending: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    total = int(rate * seconds)
    lag = 0.0

    async def one(scheduled: float) -> None:
        try:
            status = await asyncio.wait_for(exchange(connections, request), ANSWER_TIMEOUT)
        except TimeoutError:
            status = 0
        late = max(0.0, loop.time() - scheduled)  # a timer may wake a little early
        samples.append((scheduled - started, status, late * 1000))

    for index in range(total):
        scheduled = started + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        task = loop.create_task(one(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending)
    connections.close()
    samples.sort()
    return {"rate": rate, "seconds": seconds, "lag_ms": lag * 1000, "connections": connections.opened,
            "samples": [[round(at, 4), status, round(ms, 3)] for at, status, ms in samples]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument(
        "--warm", type=int, default=WARM_CONNECTIONS, help="connections opened before the first arrival"
    )
    arguments = parser.parse_args()
    coroutine = offer(arguments.url, arguments.rate, arguments.seconds, arguments.header, arguments.warm)
    try:
        import uvloop  # the faster loop where it is installed (uvicorn's standard extra brings it)
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

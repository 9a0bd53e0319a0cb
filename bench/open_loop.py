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
import time
from urllib.parse import urlsplit

MAX_CONNECTIONS = 8192
ANSWER_TIMEOUT = 30.0
WARM_CONNECTIONS = 64


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Connections:
    """Keep-alive connections to one host, at most MAX_CONNECTIONS: an idle one when there is one (the last given
    back first), else a new one, else a wait for one, in arrival order (a client's pool: past it, arrivals queue
    at the client, and their latency still counts from their scheduled time)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        # last in, first out: idle connections come back on top of the places still free to open one (None)
        self._ready: asyncio.LifoQueue[Connection | None] = asyncio.LifoQueue()
        for _ in range(MAX_CONNECTIONS):
            self._ready.put_nowait(None)
        self.opened = 0

    async def take(self) -> Connection:
        if (connection := await self._ready.get()) is not None:
            return connection
        try:
            opened = await asyncio.open_connection(self._host, self._port)
        except BaseException:
            self._ready.put_nowait(None)
            raise
        self.opened += 1
        return opened

    def give_back(self, connection: Connection) -> None:
        self._ready.put_nowait(connection)

    def lose(self, connection: Connection) -> None:
        connection[1].close()
        self._ready.put_nowait(None)

    def close(self) -> None:
        while not self._ready.empty():
            if (connection := self._ready.get_nowait()) is not None:
                connection[1].close()


async def exchange(connections: Connections, request: bytes) -> int:
    """One request on an idle or new connection; its status (the body read and dropped)."""
    try:
        reader, writer = await connections.take()
    except OSError:
        return 0
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
        connections.lose((reader, writer))
        return 0
    except asyncio.CancelledError:  # out of time: the connection is mid-exchange, of no use to the next request
        connections.lose((reader, writer))
        raise
    if b"connection: close" in head.lower():
        connections.lose((reader, writer))
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
    # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds, once per turn of its loop
    started = time.perf_counter()
    total = int(rate * seconds)
    lag = 0.0

    async def one(scheduled: float) -> None:
        # From the scheduled time when the request went out late (the generator's lag is charged); from when it
        # went out when a timer woke early (uvloop's fire on whole milliseconds).
        since = min(scheduled, time.perf_counter())
        try:
            status = await asyncio.wait_for(exchange(connections, request), ANSWER_TIMEOUT)
        except TimeoutError:
            status = 0
        samples.append((scheduled - started, status, (time.perf_counter() - since) * 1000))

    for index in range(total):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
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

"""The edge against hostile clients, over real sockets to `python -m app serve`: slow bodies hold no concurrency
slot and are cut off; oversized heads are refused; half-sent heads are closed; one address holds few connections."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import clean_environment, free_port, serving_process

pytestmark = pytest.mark.chaos

LIMITS = {
    "INBOUND_CONCURRENCY": "4",
    "INBOUND_BUSY_TARGET": "off",  # four places, whatever the machine's load
    "INBOUND_MAX_WAIT": "0.05",
    "BODY_TIMEOUT": "2",
    "HEAD_TIMEOUT": "2",
    "CONNECTIONS_PER_PEER": "off",  # the cap has a server of its own (capped_edge)
    "MAX_URL_BYTES": "2048",
    "MAX_HEADER_BYTES": "8192",
    "MAX_HEADERS": "50",
}


@pytest.fixture(scope="module")
def edge(database_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The service on a port of its own with small edge limits; yields the port."""
    port = free_port()
    environment = clean_environment(
        PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port), LOG_LEVEL="WARNING", **LIMITS
    )
    with serving_process(environment, tmp_path_factory.mktemp("edge"), f"http://127.0.0.1:{port}"):
        yield port


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def answer_of(reader: asyncio.StreamReader, within: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the next answer on a connection (read until the server closes it or the
    body's length is reached)."""
    async with asyncio.timeout(within):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def request(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await connect(port)
    try:
        writer.write(head)
        await writer.drain()
        return await answer_of(reader)
    finally:
        writer.close()


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "X-Client-Id: edge-test", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.requirement("NFR-4")
async def test_slow_bodies_hold_no_concurrency_slot_and_are_cut_off_after_the_body_deadline(edge: int) -> None:
    slow = []
    for _ in range(8):  # twice the concurrency limit
        reader, writer = await connect(edge)
        head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nX-Client-Id: slow\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: 4096\r\n\r\n{{".encode())
        await writer.drain()
        slow.append((reader, writer))
    started = time.monotonic()
    status, _, _ = await request(edge, get("/api/auth/me"))
    assert status == 401  # answered (no token), not shed with 503: the slow uploads hold no slot
    for reader, writer in slow:
        status, headers, body = await answer_of(reader)
        assert status == 408
        assert headers["content-type"] == "application/problem+json"
        assert "did not arrive within 2 s" in json.loads(body)["detail"]
        writer.close()
    assert time.monotonic() - started < 8  # cut off after the 2 s deadline, not Quart's 60 s


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (get("/api/common/health", "X-Padding: " + "a" * 10_000), 431),
        (get("/api/common/health", *(f"X-Many-{index}: 1" for index in range(60))), 431),
        (get("/api/common/health?" + "q" * 4096), 414),
    ],
    ids=["a 10 kB header", "60 headers", "a 4 kB URL"],
)
async def test_an_oversized_request_head_is_refused_with_its_status(edge: int, head: bytes, status: int) -> None:
    refused, headers, body = await request(edge, head)
    assert refused == status
    assert headers["connection"] == "close"
    assert json.loads(body)["status"] == status
    healthy, _, _ = await request(edge, get("/api/common/health"))
    assert healthy == 200


async def test_a_connection_that_sends_half_a_head_is_closed_after_the_head_timeout(edge: int) -> None:
    reader, writer = await connect(edge)
    writer.write(b"GET /api/common/health HTTP/1.1\r\nHost: x\r\nX-Slow")  # and then nothing more
    await writer.drain()
    started = time.monotonic()
    status, _, _ = await answer_of(reader)
    assert status == 408
    assert await reader.read() == b""  # closed
    assert 1.5 < time.monotonic() - started < 4  # HEAD_TIMEOUT is 2 s, checked every half second
    writer.close()


async def closed_unanswered(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:  # closed with a reset: no answer either
        return True


async def answered_once_a_place_is_free(port: int, within: float = 5) -> int:
    """The status of a health check on a new connection, retried until the server has seen a held connection
    close (that happens in the server's process: there is nothing here to await)."""
    async with asyncio.timeout(within):
        while True:
            try:
                return (await request(port, get("/api/common/health")))[0]
            except (asyncio.IncompleteReadError, ConnectionResetError):  # closed unanswered: not free yet
                await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def capped_edge(database_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The service with a cap of 8 connections per address and a head timeout long enough to hold them."""
    port = free_port()
    environment = clean_environment(
        PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port), LOG_LEVEL="WARNING",
        CONNECTIONS_PER_PEER="8", HEAD_TIMEOUT="60",
    )  # fmt: skip
    with serving_process(environment, tmp_path_factory.mktemp("capped"), f"http://127.0.0.1:{port}"):
        yield port


async def test_one_address_holds_no_more_connections_than_its_cap(capped_edge: int) -> None:
    edge = capped_edge
    held = [await connect(edge) for _ in range(8)]
    try:
        reader, writer = await connect(edge)
        writer.write(get("/api/common/health"))
        assert await closed_unanswered(reader)
        writer.close()
        _, first = held.pop()
        first.close()
        await first.wait_closed()
        assert await answered_once_a_place_is_free(edge) == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(edge: int, tmp_path: Path) -> None:
    head = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nX-Client-Id: big\r\nContent-Type: application/json\r\n"
    status, _, body = await request(edge, head + b"Content-Length: 2000000\r\n\r\n")
    assert status == 413
    assert "at most 1048576 bytes" in json.loads(body)["detail"]

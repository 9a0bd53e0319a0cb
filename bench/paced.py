"""An open-loop load generator for POSTs that must each be new (an Idempotency-Key apiece), which h2load cannot
send: requests start at a fixed rate whatever the answers do, and each one's latency is kept. Run on the load
core by bench/billing.py; prints the latencies (ms) as JSON, and how many answers were not 2xx."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import aiohttp


async def _one(http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, out: list[float],
               failed: list[int]) -> None:  # fmt: skip
    started = time.perf_counter()
    async with http.post(url, data=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}) as response:
        await response.read()
        if response.status >= 300:
            failed.append(response.status)
    out.append((time.perf_counter() - started) * 1000)


async def run(url: str, token: str, rate: float, seconds: float, body: bytes) -> tuple[list[float], list[int]]:
    headers = {"Authorization": f"Bearer {token}", "X-Client-Id": "bench", "Content-Type": "application/json"}
    latencies: list[float] = []
    failed: list[int] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = []
        start = time.perf_counter()
        for number in range(int(rate * seconds)):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(http, url, headers, body, latencies, failed)))
        await asyncio.gather(*tasks)
    return latencies, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--body", required=True)
    arguments = parser.parse_args()
    latencies, failed = asyncio.run(
        run(arguments.url, arguments.token, arguments.rate, arguments.seconds, arguments.body.encode())
    )
    print(json.dumps({"latencies": latencies, "failed": len(failed)}))


if __name__ == "__main__":
    main()

"""`make bench-resilience`, in one run against the payments simulator (its own process, pinned to core 1):

(a) the cost per call of the full policy stack (deadline, retries, budget, breaker, limiter, bulkhead, a log
    line and metrics per attempt) against a raw aiohttp call to the same simulator, no faults; sequential calls,
    the two kinds paired and shuffled; the time a caller waits per call (the acceptance figure) and the client's
    CPU time per call.
(b) retry amplification (attempts per logical call) and success rate with the simulator failing 50% of requests
    transiently (503), the budgeted client against a naive 3-attempt retry with the same backoff. The budgeted
    client's breaker is set so that it never opens at 50%, so that only the retry policy differs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable

import aiohttp
import uvloop
from prometheus_client import CollectorRegistry

from app.src.api.common.providers import ProviderError
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.resilience.policy import ProviderPolicy
from app.src.utils.logs import configure_logging
from bench.wrk import ROOT, free_port

API_KEY = "sk_test_proving_ground"
PATH = "/v1/charges?limit=1"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "X-Sim-Scope": "bench"}


async def overhead(base: str, rounds: int, warm_up: int) -> dict[str, tuple[list[float], list[float]]]:
    """(CPU µs, wall µs) of each call, raw and through the full policy: one of each per round, in a random order.

    Calls are paired and shuffled one by one rather than timed in batches: the machine's noise (other tenants, CPU
    frequency) then falls on both alike, and neither way of calling always follows the other (what ran just before
    a call changes what it costs, through the caches)."""
    policy = ProviderPolicy(rate_per_second=1_000_000, rate_burst=1000)  # every piece in the path, none limiting
    samples: dict[str, tuple[list[float], list[float]]] = {"raw aiohttp": ([], []), "full policy": ([], [])}
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as raw,
        ProviderClient("payments", base, policy, ProviderMetrics(CollectorRegistry()), api_key=API_KEY) as client,
    ):

        async def raw_call() -> object:
            timeout = aiohttp.ClientTimeout(total=10, sock_connect=1, sock_read=5)
            async with raw.get(base + PATH, headers={"X-Sim-Scope": "bench"}, timeout=timeout) as response:
                return await response.read()

        async def policy_call() -> object:
            return await client.request("GET", PATH, headers={"X-Sim-Scope": "bench"})

        calls = [("raw aiohttp", raw_call), ("full policy", policy_call)]
        shuffle = random.Random(7).shuffle  # noqa: S311 - an order, not a secret
        cpu_clock, wall_clock = time.process_time, time.perf_counter
        for round_ in range(warm_up + rounds):
            shuffle(calls)
            for name, call in calls:
                cpu, wall = cpu_clock(), wall_clock()
                await call()
                wall, cpu = wall_clock() - wall, cpu_clock() - cpu
                if round_ >= warm_up:
                    samples[name][0].append(cpu * 1e6)
                    samples[name][1].append(wall * 1e6)
    return samples


async def _run_concurrently(call: Callable[[], Awaitable[bool]], calls: int, concurrency: int) -> int:
    successes = 0
    remaining = iter(range(calls))

    async def worker() -> None:
        nonlocal successes
        for _ in remaining:
            succeeded = await call()
            successes += succeeded

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return successes


async def amplification(base: str, calls: int, concurrency: int) -> dict[str, tuple[float, float]]:
    """(attempts per logical call, success rate) of each client."""
    # A breaker that opens only after 100 failures in a row: it never does at 50%, so only the retries differ.
    policy = ProviderPolicy(
        backoff_base=0.001, backoff_cap=0.01, breaker_window=100, breaker_minimum_calls=100, breaker_failure_rate=1.0
    )
    registry = CollectorRegistry()
    results = {}
    async with ProviderClient("payments", base, policy, ProviderMetrics(registry), api_key=API_KEY) as client:

        async def budgeted() -> bool:
            try:
                await client.request("GET", PATH, headers={"X-Sim-Scope": "bench"})
            except ProviderError:
                return False
            return True

        successes = await _run_concurrently(budgeted, calls, concurrency)
        attempts = sum(
            sample.value
            for metric in registry.collect()
            if metric.name == "provider_attempts"
            for sample in metric.samples
            if sample.name == "provider_attempts_total"
        )
        results["budgeted (20%, min 3)"] = (attempts / calls, successes / calls)

    naive_attempts = 0
    rng = random.Random(1)  # noqa: S311 - jitter
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def naive() -> bool:
            nonlocal naive_attempts
            for attempt in range(1, 4):
                naive_attempts += 1
                async with session.get(base + PATH) as response:
                    await response.read()
                    if response.status < 500:
                        return True
                await asyncio.sleep(rng.uniform(0, min(0.01, 0.001 * 2 ** (attempt - 1))))
            return False

        successes = await _run_concurrently(naive, calls, concurrency)
        results["naive 3 attempts"] = (naive_attempts / calls, successes / calls)
    return results


def _control(base: str, method: str, path: str, body: bytes | None = None) -> None:
    request = urllib.request.Request(base + path, data=body, method=method)  # noqa: S310 - loopback only
    urllib.request.urlopen(request, timeout=10).close()  # nosec B310 # noqa: S310


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=3, help="for (a): measurements, each with new connections")
    parser.add_argument("--rounds", type=int, default=1500, help="for (a): pairs of calls timed per block")
    parser.add_argument("--logical-calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()

    # As in the service: one JSON line per attempt, formatted and written (to /dev/null), and gc.freeze() after
    # start-up (see app/__init__.py).
    configure_logging("INFO", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the whole run
    gc.freeze()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "simulators", "payments", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                _control(base, "GET", "/__sim/clock")
                break
            except OSError:
                time.sleep(0.1)
        os.sched_setaffinity(0, {0})  # the client on core 0, the simulator on core 1
        blocks = [uvloop.run(overhead(base, arguments.rounds, warm_up=200)) for _ in range(arguments.blocks)]
        fault = b'{"route": "/v1/charges", "probability": 0.5, "action": {"kind": "status", "status": 503}}'
        _control(base, "POST", "/__sim/faults", fault)
        amplified = uvloop.run(amplification(base, arguments.logical_calls, arguments.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"(a) cost per call, GET {PATH}, no faults: medians of {arguments.rounds} paired calls in each of "
        f"{arguments.blocks} blocks (new connections each)"
    )
    print(f"{'':<9}{'wall µs: raw':>13}{'policy':>8}{'overhead':>10}{'CPU µs: raw':>14}{'policy':>8}{'overhead':>10}")
    overheads: list[tuple[float, float]] = []
    for number, block in enumerate(blocks, 1):
        (raw_cpu, raw_wall), (policy_cpu, policy_wall) = (
            (statistics.median(cpu), statistics.median(wall)) for cpu, wall in block.values()
        )
        overheads.append((policy_wall / raw_wall - 1, policy_cpu / raw_cpu - 1))
        print(
            f"block {number:<3}{raw_wall:>13.0f}{policy_wall:>8.0f}{overheads[-1][0]:>+10.1%}"
            f"{raw_cpu:>14.0f}{policy_cpu:>8.0f}{overheads[-1][1]:>+10.1%}"
        )
    wall_overhead = statistics.median(wall for wall, _ in overheads)
    cpu_overhead = statistics.median(cpu for _, cpu in overheads)
    print(f"policy overhead: {wall_overhead:+.1%} of a call's time (target <= 10%), {cpu_overhead:+.1%} of its CPU")
    print(
        f"\n(b) {arguments.logical_calls} logical calls, {arguments.concurrency} at a time, 50% of requests fail (503)"
    )
    print(f"{'':<24}{'attempts/call':>14}{'success':>10}")
    for name, (attempts, success) in amplified.items():
        print(f"{name:<24}{attempts:>14.2f}{success:>10.1%}")
    print("target: budgeted <= 1.30 attempts per call")


if __name__ == "__main__":
    main()

"""`make bench`: GET /api/common/health through our full stack vs a minimal Quart app, and the full stack again
with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT set: a server span per request, exported to a sink that drops it),
every request and one in ten sampled (OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1).

Each server is pinned to core 0 and wrk to core 1; they are measured in turns (hello, service, traced, hello, ...)
so that a noisy neighbour affects all alike. Prints the median requests/s and p99 of three runs, and the ratios.
"""

from __future__ import annotations

import asyncio
import os
import statistics

from app.dev.embedded_postgres import embedded_postgres
from app.runtime.migrations import upgrade
from bench.wrk import LOAD_CORE, ROOT, Run, free_port, load_arguments, pinned_server, wrk

ROUTE = "/api/common/health"


def main() -> None:
    arguments = load_arguments(__doc__)

    uvicorn_flags = ["--no-access-log", "--log-level", "warning"]
    with embedded_postgres(ROOT / ".data" / "bench-postgres") as database_uri:
        asyncio.run(upgrade(database_uri))
        hello_port, service_port, traced_port, sampled_port, sink_port = (free_port() for _ in range(5))
        service_env = {
            **os.environ,
            "PROFILE": "test",
            "DB_URI": database_uri,
            "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": str(service_port),
            "DATA_DIR": str(ROOT / ".data"),
        }
        traced_env = service_env | {
            "LISTEN_PORT": str(traced_port),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        }
        sampled_env = traced_env | {
            "LISTEN_PORT": str(sampled_port),
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        hello = ["-m", "uvicorn", "bench.hello_app:app", "--port", str(hello_port), *uvicorn_flags]
        sink = ["-m", "bench.otlp_sink", str(sink_port)]  # beside wrk: the server core is the one measured
        urls = {
            "minimal Quart": f"http://127.0.0.1:{hello_port}{ROUTE}",
            "full stack": f"http://127.0.0.1:{service_port}{ROUTE}",
            "traced": f"http://127.0.0.1:{traced_port}{ROUTE}",
            "traced 1/10": f"http://127.0.0.1:{sampled_port}{ROUTE}",
        }
        with (
            pinned_server(sink, f"http://127.0.0.1:{sink_port}/", dict(os.environ), core=LOAD_CORE),
            pinned_server(hello, urls["minimal Quart"], dict(os.environ)),
            pinned_server(["-m", "app", "serve"], urls["full stack"], service_env),
            pinned_server(["-m", "app", "serve"], urls["traced"], traced_env),
            pinned_server(["-m", "app", "serve"], urls["traced 1/10"], sampled_env),
        ):
            for url in urls.values():
                wrk(url, 2, arguments.connections)  # warm-up
            results: dict[str, list[Run]] = {name: [] for name in urls}
            for _ in range(arguments.runs):
                for name, url in urls.items():
                    results[name].append(wrk(url, arguments.seconds, arguments.connections))

    medians = {name: statistics.median(run.requests_per_second for run in runs) for name, runs in results.items()}
    print(f"GET {ROUTE}, {arguments.connections} connections, median of {arguments.runs} x {arguments.seconds}s")
    print(f"{'':<14}{'req/s':>10}{'p99 ms':>10}   runs (req/s)")
    for name, runs in results.items():
        p99 = statistics.median(run.p99_ms for run in runs)
        each = ", ".join(f"{run.requests_per_second:,.0f}" for run in runs)
        print(f"{name:<14}{medians[name]:>10,.0f}{p99:>10.2f}   {each}")
    ratio = medians["full stack"] / medians["minimal Quart"]
    print(f"ratio full stack / minimal Quart: {ratio:.2f} (target >= 0.70)")
    print(f"ratio traced / full stack: {medians['traced'] / medians['full stack']:.2f} (tracing on, every request)")
    print(f"ratio traced 1/10 / full stack: {medians['traced 1/10'] / medians['full stack']:.2f} (10% sampled)")


if __name__ == "__main__":
    main()

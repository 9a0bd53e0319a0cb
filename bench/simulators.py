"""`make bench-sim`: create-charge requests/s of the payments simulator on one core, without faults and with a
10%-probability fault rule installed, measured in turns; prints each and its ratio to the run without faults.

Two rules: a 503 (whose failed requests are cheaper, so it flatters the engine) and a 0 ms latency rule, which
costs the same decision per request but never cuts one short: the fair measure of the engine's cost."""

from __future__ import annotations

import json
import statistics
import urllib.request

from bench.wrk import ROOT, Run, free_port, load_arguments, pinned_server, wrk

SCRIPT = ROOT / "bench" / "create_charge.lua"
FAULTS: dict[str, dict[str, object] | None] = {
    "no faults": None,
    "10% 503 rule": {"route": "/v1/charges", "probability": 0.1, "action": {"kind": "status", "status": 503}},
    # Drawn and logged on every request like the 503 rule, but never cuts a request short: the engine's own cost.
    "10% 0 ms rule": {
        "route": "/v1/charges",
        "probability": 0.1,
        "action": {"kind": "latency", "distribution": {"type": "fixed", "ms": 0}, "phase": "after"},
    },
}


def _control(base: str, method: str, path: str, body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310 # noqa: S310
        text = response.read()
        return json.loads(text) if text else None


def main() -> None:
    arguments = load_arguments(__doc__)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[Run]] = {name: [] for name in FAULTS}
    with pinned_server(["-m", "simulators", "payments", "--port", str(port)], base + "/__sim/clock"):
        wrk(base, 2, arguments.connections, SCRIPT)  # warm-up
        for _ in range(arguments.runs):
            for name, fault in FAULTS.items():
                _control(base, "POST", "/__sim/reset")
                if fault is not None:
                    _control(base, "POST", "/__sim/faults", fault)
                results[name].append(wrk(base, arguments.seconds, arguments.connections, SCRIPT))

    medians = {name: statistics.median(run.requests_per_second for run in runs) for name, runs in results.items()}
    print(f"POST /v1/charges, {arguments.connections} connections, median of {arguments.runs} x {arguments.seconds}s")
    print(f"{'':<16}{'req/s':>10}{'p99 ms':>10}{'non-2xx':>10}   runs (req/s)")
    for name, runs in results.items():
        p99 = statistics.median(run.p99_ms for run in runs)
        failed = statistics.median(run.non_2xx / (run.requests_per_second * arguments.seconds) for run in runs)
        each = ", ".join(f"{run.requests_per_second:,.0f}" for run in runs)
        print(f"{name:<16}{medians[name]:>10,.0f}{p99:>10.2f}{failed:>10.1%}   {each}")
    for name in list(FAULTS)[1:]:
        ratio = medians[name] / medians["no faults"]
        print(f"ratio {name} / no faults: {ratio:.2f} (fault engine cost {1 - ratio:.0%}; target <= 15%)")
    print(f"target >= 3,000 req/s without faults: {'met' if medians['no faults'] >= 3000 else 'NOT met'}")


if __name__ == "__main__":
    main()

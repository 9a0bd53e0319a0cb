"""Work that keeps the CPU busy, as a request's own computation does (time.sleep would leave it idle)."""

from __future__ import annotations

import time


def compute_for(seconds: float) -> int:
    """Reads the clock in a loop for `seconds` of wall time; how many times."""
    done = 0
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        done += 1
    return done

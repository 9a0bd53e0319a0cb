"""The engine every simulator shares: faults, latency, rate limits, seeded decisions, journal, clock, control API."""

from .clock import SimClock
from .config import SimulatorConfig
from .engine import FaultEngine
from .simulator import Simulator

__all__ = ["FaultEngine", "SimClock", "Simulator", "SimulatorConfig"]

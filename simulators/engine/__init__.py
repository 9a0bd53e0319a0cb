"""The engine every simulator shares: faults, latency, rate limits, seeded decisions, journal, clock, control API."""

from simulators.engine.clock import SimClock
from simulators.engine.config import SimulatorConfig
from simulators.engine.engine import FaultEngine
from simulators.engine.simulator import Simulator

__all__ = ["FaultEngine", "SimClock", "Simulator", "SimulatorConfig"]

"""What every simulator's configuration has; each provider extends it with its own fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulators.engine.rules import RuleSpec


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    journal_size: int = Field(default=10_000, ge=1, le=1_000_000)
    api_keys: list[str] = Field(default_factory=lambda: ["sk_test_proving_ground"], min_length=1)
    rules: list[RuleSpec] = Field(default_factory=list, description="Installed at start and after a full reset.")

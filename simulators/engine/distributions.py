"""Latency distributions, in milliseconds, drawn from the scope's seeded random source."""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixed(_Distribution):
    type: Literal["fixed"] = "fixed"
    ms: float = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        return self.ms


class Uniform(_Distribution):
    type: Literal["uniform"] = "uniform"
    min_ms: float = Field(ge=0)
    max_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.max_ms < self.min_ms:
            raise ValueError("max_ms must not be below min_ms")
        return self

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min_ms, self.max_ms)


class Normal(_Distribution):
    """Clipped at zero: a delay is never negative."""

    type: Literal["normal"] = "normal"
    mean_ms: float = Field(ge=0)
    stddev_ms: float = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        return max(0.0, rng.gauss(self.mean_ms, self.stddev_ms))


class LogNormal(_Distribution):
    """The long tail of real services: `median_ms` and the shape `sigma`, never above `cap_ms`."""

    type: Literal["lognormal"] = "lognormal"
    median_ms: float = Field(gt=0)
    sigma: float = Field(ge=0, le=5)
    cap_ms: float = Field(gt=0)

    def sample(self, rng: random.Random) -> float:
        return min(self.cap_ms, rng.lognormvariate(math.log(self.median_ms), self.sigma))


Distribution = Annotated[Fixed | Uniform | Normal | LogNormal, Field(discriminator="type")]

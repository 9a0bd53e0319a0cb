"""A load profile (load/profiles/*.yaml): users over time, how fast each acts, provider faults by time, the service
settings it runs with, and its SLOs. Validated when read: a bad profile is refused with the field it is about,
before any traffic. Pure: no Locust here (the pytest process never imports gevent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
Seconds = Annotated[float, Field(gt=0, le=7 * 24 * 3600)]
Ratio = Annotated[float, Field(ge=0, le=1)]
Millis = Annotated[float, Field(gt=0)]


class ProfileError(Exception):
    """A profile that cannot run, with every field that is wrong."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(Strict):
    """From the end of the stage before, `duration` seconds at `users` (reached at `spawn_rate` a second)."""

    duration: Seconds
    users: int = Field(ge=0, le=100_000)
    spawn_rate: float = Field(gt=0, le=10_000)


class Journeys(Strict):
    """Relative weights of what the simulated users do (as in real traffic: mostly browsing)."""

    browse: int = Field(default=6, ge=0)
    account: int = Field(default=3, ge=0)
    pay: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _some(self) -> Journeys:
        if self.browse + self.account + self.pay == 0:
            raise ValueError("at least one journey needs a weight above 0")
        return self


class Fault(Strict):
    """A fault rule put on a provider simulator from `at` seconds for `duration` seconds (its control API; only when
    the simulators' URLs are known)."""

    provider: Literal["payments", "catalog", "notify"]
    at: float = Field(ge=0)
    duration: Seconds
    rule: dict[str, Any] = Field(description="A simulator fault rule (docs/simulators.md): route, status, delay...")


class Percentiles(Strict):
    p95_ms: Millis | None = None
    p99_ms: Millis | None = None


class Slos(Strict):
    """Bounds the run must stay within. Errors exclude shed (503) and rate-limited (429) answers, which have
    ceilings of their own."""

    overall: Percentiles = Percentiles()
    requests: dict[str, Percentiles] = Field(default_factory=dict, description="By request name (route template)")
    max_error_ratio: Ratio = 0.01
    max_shed_ratio: Ratio = 0.0
    max_rate_limited_ratio: Ratio = 0.0
    min_requests: int = Field(default=1, ge=0, description="A run that sent fewer proves nothing")


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str
    stages: list[Stage] = Field(min_length=1)
    pace: float = Field(gt=0, le=1000, description="Journeys a simulated user starts a second (constant throughput)")
    journeys: Journeys = Journeys()
    totp_share: Ratio = Field(default=0.2, description="Share of the accounts that sign in with TOTP")
    faults: list[Fault] = Field(default_factory=list)
    service: dict[str, str] = Field(
        default_factory=dict,
        description="Settings the service runs with (the local topology applies them; against HOST, the operator)",
    )
    slos: Slos

    @model_validator(mode="after")
    def _faults_within_the_run(self) -> Profile:
        for index, fault in enumerate(self.faults):
            if fault.at + fault.duration > self.duration:
                raise ValueError(f"faults.{index} ends after the run ({self.duration:g} s)")
        return self

    @property
    def duration(self) -> float:
        return sum(stage.duration for stage in self.stages)

    @property
    def peak_users(self) -> int:
        return max(stage.users for stage in self.stages)

    def target_at(self, elapsed: float) -> tuple[int, float] | None:
        """(users, spawn rate) the run should be at `elapsed` seconds in; None once it is over."""
        start = 0.0
        for stage in self.stages:
            start += stage.duration
            if elapsed < start:
                return stage.users, stage.spawn_rate
        return None

    def expected_starts(self) -> float:
        """Journeys the run should start if every user kept its pace: each stage's users (ramped at its spawn rate
        from the stage before's) times the pace, integrated over the run."""
        total, users = 0.0, 0.0
        for stage in self.stages:
            ramp = min(stage.duration, abs(stage.users - users) / stage.spawn_rate)
            total += (users + stage.users) / 2 * ramp + stage.users * (stage.duration - ramp)
            users = stage.users
        return total * self.pace


def load_profile(name_or_path: str) -> Profile:
    """The profile `name` (load/profiles/NAME.yaml) or at a path; ProfileError says what is wrong and where."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise ProfileError(f"{path}: cannot read it ({error.strerror}); the profiles: {known}") from None
    except yaml.YAMLError as error:
        raise ProfileError(f"{path}: not YAML: {error}") from None
    if not isinstance(document, dict):
        raise ProfileError(f"{path}: a profile is a mapping of fields")
    try:
        return Profile.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'profile'}: {item['msg']}" for item in error.errors()
        )
        raise ProfileError(f"{path}: {problems}") from None

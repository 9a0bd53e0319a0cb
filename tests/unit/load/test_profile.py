"""Load profiles are checked before any traffic: a bad one is refused naming its field; the shape follows the
stages; the offered journeys are what the stages and pace add up to."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from load.profile import PROFILES_DIR, ProfileError, load_profile

MINIMAL = {
    "name": "tiny",
    "description": "two stages",
    "stages": [{"duration": 10, "users": 4, "spawn_rate": 2}, {"duration": 20, "users": 8, "spawn_rate": 1}],
    "pace": 0.5,
    "slos": {"max_error_ratio": 0.01},
}


def written(tmp_path: Path, document: object) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


@pytest.mark.parametrize("name", sorted(path.stem for path in PROFILES_DIR.glob("*.yaml")))
def test_every_shipped_profile_is_valid(name: str) -> None:
    assert load_profile(name).name == name


def test_the_smoke_profile_lasts_a_minute_at_most() -> None:
    assert load_profile("smoke").duration <= 60


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"stages": []}, "stages"),
        ({"stages": [{"duration": 10, "users": -1, "spawn_rate": 1}]}, "stages.0.users"),
        ({"pace": 0}, "pace"),
        ({"slos": {"max_error_ratio": 2}}, "slos.max_error_ratio"),
        ({"slos": {"overall": {"p99_ms": -5}}}, "slos.overall.p99_ms"),
        ({"sloz": {}}, "sloz"),  # a misspelt field is refused, not ignored
        ({"journeys": {"browse": 0, "account": 0, "pay": 0}}, "journeys"),
        ({"faults": [{"provider": "mail", "at": 0, "duration": 1, "rule": {}}]}, "faults.0.provider"),
        ({"faults": [{"provider": "payments", "at": 25, "duration": 10, "rule": {}}]}, "ends after the run"),
        ({"name": "Has Spaces"}, "name"),
    ],
)
def test_a_bad_profile_is_refused_naming_its_field(tmp_path: Path, change: dict[str, object], named: str) -> None:
    with pytest.raises(ProfileError, match=named):
        load_profile(written(tmp_path, MINIMAL | change))


def test_a_profile_that_is_not_there_names_the_ones_that_are() -> None:
    with pytest.raises(ProfileError, match="smoke"):
        load_profile("no-such-profile")


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="mapping"):
        load_profile(written(tmp_path, ["a", "list"]))


def test_the_shape_follows_the_stages_and_ends_after_the_last(tmp_path: Path) -> None:
    profile = load_profile(written(tmp_path, MINIMAL))
    assert profile.target_at(0) == (4, 2)
    assert profile.target_at(9.9) == (4, 2)
    assert profile.target_at(10) == (8, 1)
    assert profile.target_at(29.9) == (8, 1)
    assert profile.target_at(30) is None


def test_expected_journeys_count_the_ramps_at_their_spawn_rates(tmp_path: Path) -> None:
    profile = load_profile(written(tmp_path, MINIMAL))
    # stage 1: 0 -> 4 users in 2 s (4 user-seconds), then 4 for 8 s (32); stage 2: 4 -> 8 in 4 s (24), 8 for 16 s
    # (128): 188 user-seconds at 0.5 journeys a second.
    assert profile.expected_starts() == pytest.approx(94)

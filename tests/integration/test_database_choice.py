"""The suite's choice of PostgreSQL, with a Docker engine answering: the embedded one unless a container is asked
for, and a container that cannot be had stops the run with one message naming the image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.database_choice import DatabaseChoice, choose_database
from tests.support.fake_docker import NO_REGISTRY, fake_docker_engine
from tests.support.postgres import repository_root

pytestmark = pytest.mark.integration

RYUK_IMAGE = "testcontainers/ryuk:0.8.1"


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("db")  # a unix socket's path must stay under 108 bytes


def run_the_suites_fixture(directory: Path, **settings: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """A pytest of its own on tests/support/database_probe.py, a Docker engine at DOCKER_HOST, and `settings`:
    (how it ended, the database URI it was given)."""
    output = directory / "chosen"
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("TEST_DB", "TESTCONT"))}
    environment |= {"DOCKER_HOST": f"unix://{directory / 'docker.sock'}", "DATABASE_PROBE_OUTPUT": str(output)}
    environment |= settings
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-W", "error"]
    result = subprocess.run(  # noqa: S603 - our own interpreter running our own suite's fixture
        [*command, "tests/support/database_probe.py"],
        cwd=repository_root(), env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result, output.read_text() if output.exists() else ""


def test_with_a_docker_engine_up_and_nothing_asked_the_embedded_database_is_chosen(short_dir: Path) -> None:
    with fake_docker_engine(short_dir / "docker.sock") as requests:
        result, uri = run_the_suites_fixture(short_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "host=" in uri  # pgserver's own socket, not a container's port
    assert "@localhost" not in uri
    assert requests == []  # the engine was never even asked


def test_a_container_asked_for_whose_image_cannot_be_pulled_stops_the_run_naming_the_image(short_dir: Path) -> None:
    with fake_docker_engine(short_dir / "docker.sock") as requests:
        result, uri = run_the_suites_fixture(short_dir, TEST_DB="container", TEST_DB_IMAGE="registry.example/pg:15")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "the image registry.example/pg:15 (PostgreSQL) is not on this machine and could not be pulled" in (
        result.stderr
    )
    assert NO_REGISTRY in result.stderr
    assert uri == ""
    assert any("/images/create?" in request and "registry.example%2Fpg" in request for request in requests)


def test_a_missing_reaper_image_is_named_with_the_way_to_run_without_it(short_dir: Path) -> None:
    with fake_docker_engine(short_dir / "docker.sock", images=frozenset({"postgres:16-alpine"})):
        result, _ = run_the_suites_fixture(short_dir, TEST_DB="container")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"the image {RYUK_IMAGE} (testcontainers' reaper; TESTCONTAINERS_RYUK_DISABLED=true" in result.stderr


@pytest.mark.parametrize(
    ("environment", "choice"),
    [
        ({}, DatabaseChoice.EMBEDDED),
        ({"TEST_DB": "embedded", "DOCKER_HOST": "unix:///var/run/docker.sock"}, DatabaseChoice.EMBEDDED),
        ({"TEST_DB": "Container"}, DatabaseChoice.CONTAINER),
        ({"TEST_DB": "container", "TEST_DB_URI": "postgresql://db/x"}, DatabaseChoice.GIVEN),
    ],
)
def test_only_an_explicit_setting_moves_the_suite_off_the_embedded_database(
    environment: dict[str, str], choice: DatabaseChoice
) -> None:
    assert choose_database(environment) is choice


def test_an_unknown_test_db_is_refused_with_the_accepted_values() -> None:
    with pytest.raises(ValueError, match=r"'embedded' .* or 'container'"):
        choose_database({"TEST_DB": "sqlite"})

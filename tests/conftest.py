"""The test topology (DESIGN section 7): PostgreSQL from TEST_DB_URI, else a Docker testcontainer where an engine
answers, else the embedded pgserver; one database per pytest-xdist worker, cloned from a migrated template."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from quart import Quart
from quart.typing import TestAppProtocol as ServingApp
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.dev.embedded_postgres import embedded_postgres
from app.settings import Settings
from app.src.utils.logs import configure_logging
from tests.support.postgres import (
    create_empty_database,
    drop_database,
    provision_database,
    repository_root,
    truncate_all,
)

pytest_plugins = ["tests.support.simulator_fixtures"]


def _docker_answers() -> bool:
    """Whether a Docker engine listens where DOCKER_HOST (or the default socket) says; a client alone is not one."""
    target = urlsplit(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    try:
        if target.scheme == "unix":
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(2)
                probe.connect(target.path)
        else:
            socket.create_connection((target.hostname or "localhost", target.port or 2375), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_admin_uri() -> Iterator[str]:
    """A URI on which the suite may create databases."""
    if uri := os.environ.get("TEST_DB_URI"):
        yield uri
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
    else:
        with embedded_postgres(repository_root() / ".data" / "test-postgres") as uri:
            yield uri


@pytest.fixture(scope="session")
def database_uri(postgres_admin_uri: str, worker_id: str) -> Iterator[str]:
    """This worker's own database, at the newest migration."""
    name = f"pgtest_{worker_id}_{os.getpid()}"
    uri = asyncio.run(provision_database(postgres_admin_uri, name))
    yield uri
    asyncio.run(drop_database(postgres_admin_uri, name))


@pytest.fixture
async def empty_database_uri(postgres_admin_uri: str, worker_id: str) -> AsyncIterator[str]:
    """A database of the test's own that no migration has touched."""
    name = f"pgtest_empty_{worker_id}_{os.getpid()}"
    yield await create_empty_database(postgres_admin_uri, name)
    await drop_database(postgres_admin_uri, name)


@pytest.fixture
def settings(database_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        profile="test",
        db_uri=SecretStr(database_uri),
        data_dir=tmp_path_factory.mktemp("data"),
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def app(settings: Settings) -> Quart:
    """The service, not yet serving: a test may add routes before `serving_app` starts it."""
    return create_app(settings)


@pytest.fixture
async def serving_app(app: Quart, database_uri: str) -> AsyncIterator[ServingApp]:
    async with app.test_app() as test_app:
        yield test_app
    await truncate_all(database_uri)


@pytest.fixture
def client(serving_app: ServingApp) -> HttpClient:
    return serving_app.test_client()


@pytest.fixture
def logs_back_to_stdout() -> Iterator[None]:
    """For a test that points logging at a stream of its own: standard output again after it."""
    yield
    configure_logging("INFO", "json", stream=sys.stdout)

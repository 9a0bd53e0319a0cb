"""The test topology (DESIGN section 7): PostgreSQL from TEST_DB_URI, else a Docker testcontainer when TEST_DB=container
asks for one, else the embedded pgserver; one database per pytest-xdist worker, cloned from a migrated template."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from quart import Quart
from quart.typing import TestAppProtocol as ServingApp
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.database import Database
from app.dev.embedded_postgres import embedded_postgres
from app.settings import Settings
from app.src.utils.logs import configure_logging
from tests.support.database_choice import (
    DEFAULT_IMAGE,
    ContainerDatabase,
    ContainerUnavailableError,
    DatabaseChoice,
    choose_database,
)
from tests.support.postgres import (
    create_empty_database,
    drop_database,
    kept_database,
    provision_database,
    repository_root,
    truncate_all,
)

pytest_plugins = ["tests.support.simulator_fixtures", "tests.support.scripted_provider"]


_CONTAINER = pytest.StashKey[ContainerDatabase]()
_CONTAINER_URI = "test_db_container_uri"


def pytest_configure(config: pytest.Config) -> None:
    """With TEST_DB=container, one container for the whole run, started here (once, before any xdist worker);
    a container that cannot be had stops the run with one message that says why."""
    if hasattr(config, "workerinput"):
        return
    try:
        if choose_database(os.environ) is not DatabaseChoice.CONTAINER:
            return
        container = ContainerDatabase(os.environ.get("TEST_DB_IMAGE", DEFAULT_IMAGE))
        config.stash[_CONTAINER] = container
        container.start()
    except (ValueError, ContainerUnavailableError) as error:
        raise pytest.UsageError(str(error)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if (container := config.stash.get(_CONTAINER, None)) is not None:
        container.stop()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: each worker gets the container's URI from the run that started it."""
    if (container := node.config.stash.get(_CONTAINER, None)) is not None:
        node.workerinput[_CONTAINER_URI] = container.uri


@pytest.fixture(scope="session")
def postgres_admin_uri(pytestconfig: pytest.Config) -> Iterator[str]:
    """A URI on which the suite may create databases (see tests/support/database_choice.py)."""
    choice = choose_database(os.environ)
    if choice is DatabaseChoice.GIVEN:
        yield os.environ["TEST_DB_URI"]
    elif choice is DatabaseChoice.CONTAINER:
        worker_input: dict[str, Any] = getattr(pytestconfig, "workerinput", {})
        yield worker_input.get(_CONTAINER_URI) or pytestconfig.stash[_CONTAINER].uri
    else:
        with embedded_postgres(repository_root() / ".data" / "test-postgres") as uri:
            yield uri


@pytest.fixture(scope="session")
def database_uri(postgres_admin_uri: str, worker_id: str) -> Iterator[str]:
    """This worker's own database, at the newest migration: cloned for the run, or one kept between runs when
    TEST_DB_KEEP is set (the mutation harness sets it: see tests/support/postgres.py kept_database)."""
    if os.environ.get("TEST_DB_KEEP"):
        with kept_database(postgres_admin_uri) as uri:
            yield uri
        return
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
async def clean_database(database_uri: str) -> AsyncIterator[Database]:
    """The worker's migrated database, emptied before and after the test, for tests that call services directly."""
    database = Database(database_uri)
    await database.initialize()
    await truncate_all(database_uri)
    yield database
    await database.dispose()
    await truncate_all(database_uri)


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

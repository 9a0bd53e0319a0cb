"""Which PostgreSQL the suite runs on, and the Docker testcontainer when one is asked for.

`TEST_DB_URI` wins; else `TEST_DB=container` starts a container from `TEST_DB_IMAGE`; else (`TEST_DB` unset or
`embedded`) the embedded pgserver. A Docker engine that happens to run changes nothing: the embedded database
starts in half a second and needs no image, where a container needs a registry many networks cannot reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

DEFAULT_IMAGE = "postgres:16-alpine"


class DatabaseChoice(Enum):
    GIVEN = "TEST_DB_URI"
    CONTAINER = "container"
    EMBEDDED = "embedded"


class ContainerUnavailableError(Exception):
    """The container asked for cannot be had here; the message says which image and what to do."""


def choose_database(environment: Mapping[str, str]) -> DatabaseChoice:
    if environment.get("TEST_DB_URI"):
        return DatabaseChoice.GIVEN
    asked = environment.get("TEST_DB", "").strip().lower() or DatabaseChoice.EMBEDDED.value
    if asked == DatabaseChoice.CONTAINER.value:
        return DatabaseChoice.CONTAINER
    if asked == DatabaseChoice.EMBEDDED.value:
        return DatabaseChoice.EMBEDDED
    raise ValueError(f"TEST_DB is {asked!r}: use 'embedded' (the default) or 'container'")


def _ensure_image(client: Any, image: str, role: str) -> None:
    """The image on this machine, pulled if it is not; else an error that names it."""
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except docker.errors.DockerException as error:
        raise ContainerUnavailableError(
            f"TEST_DB=container: the image {image} ({role}) is not on this machine and could not be pulled: "
            f"{getattr(error, 'explanation', None) or error}. Set TEST_DB_IMAGE to an image this machine has "
            "(docker images), or unset TEST_DB to run on the embedded PostgreSQL."
        ) from None


class ContainerDatabase:
    """A PostgreSQL testcontainer for the whole run: `start()` gives its URI, `stop()` removes it."""

    def __init__(self, image: str) -> None:
        self.image = image
        self._container: Any = None
        self.uri = ""

    def start(self) -> str:
        import docker
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.core.config import testcontainers_config

        try:
            client = docker.from_env()
            client.ping()
        except docker.errors.DockerException as error:
            raise ContainerUnavailableError(f"TEST_DB=container, but no Docker engine answers: {error}") from None
        _ensure_image(client, self.image, "PostgreSQL")
        if not testcontainers_config.ryuk_disabled:
            _ensure_image(
                client,
                testcontainers_config.ryuk_image,
                "testcontainers' reaper; TESTCONTAINERS_RYUK_DISABLED=true runs without it",
            )
        self._container = PostgresContainer(self.image, driver=None)
        self._container.start()
        self.uri = self._container.get_connection_url()
        return self.uri

    def stop(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            container.stop()

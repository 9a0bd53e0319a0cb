from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.settings import Settings
from tests.integration.auth_service_support import auth  # noqa: F401 - a fixture for every module
from tests.integration.auth_support import auth_settings, serve
from tests.support.postgres import truncate_all


@pytest.fixture
async def auth_app(settings: Settings, database_uri: str) -> AsyncIterator[HttpClient]:
    """The service with a known token key ring (so tests can seal tokens of their own)."""
    async with serve(create_app(auth_settings(settings))) as client:
        yield client
    await truncate_all(database_uri)

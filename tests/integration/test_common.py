"""/api/common, /metrics and the access log: what operators and load balancers rely on."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys

import aiohttp
import pytest
from pydantic import SecretStr
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.settings import Settings
from tests.support.postgres import HEAD
from tests.support.processes import free_port


async def test_health_answers_ok(client: HttpClient) -> None:
    response = await client.get("/api/common/health")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_version_names_the_service_and_profile(client: HttpClient) -> None:
    response = await client.get("/api/common/version")
    assert await response.get_json() == {"name": "proving-ground", "version": "0.1.0", "profile": "test"}


async def test_ready_when_the_database_is_at_the_newest_migration(client: HttpClient) -> None:
    response = await client.get("/api/common/ready")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ready", "schema_revision": HEAD}


async def test_not_ready_while_migrations_are_not_applied(settings: Settings, empty_database_uri: str) -> None:
    app = create_app(settings.model_copy(update={"db_uri": SecretStr(empty_database_uri)}))
    async with app.test_app() as serving:
        response = await serving.test_client().get("/api/common/ready")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    body = await response.get_json()
    assert body["detail"] == "The database schema is not at the migration this build needs."


@pytest.mark.requirement("NFR-6")
async def test_request_id_is_echoed_when_well_formed_and_minted_otherwise(client: HttpClient) -> None:
    echoed = await client.get("/api/common/health", headers={"X-Request-ID": "req-42.a:b_c"})
    assert echoed.headers["X-Request-ID"] == "req-42.a:b_c"
    for unacceptable in ("has space", "x" * 129, "<script>"):
        replaced = await client.get("/api/common/health", headers={"X-Request-ID": unacceptable})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])
    first, second = await asyncio.gather(client.get("/api/common/health"), client.get("/api/common/health"))
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.requirement("NFR-6")
async def test_metrics_count_requests_by_route_template_and_status(client: HttpClient) -> None:
    for _ in range(3):
        await client.get("/api/common/health")
    await client.get("/api/nowhere/123")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    exposition = await response.get_data(as_text=True)
    assert 'http_requests_total{method="GET",route="/api/common/health",status="200"} 3.0' in exposition
    assert 'http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in exposition
    assert 'http_request_duration_seconds_count{method="GET",route="/api/common/health",status="200"} 3.0' in exposition
    assert "/api/nowhere/123" not in exposition


@pytest.mark.requirement("NFR-6")
async def test_each_request_writes_one_json_access_log_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    app = create_app(settings)
    async with app.test_app() as serving:
        await serving.test_client().get(
            "/api/common/version", headers={"X-Request-ID": "log-line-1", "X-Client-Id": "ignored-on-common"}
        )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line.get("logger") == "access"]
    assert len(access) == 1
    line = access[0]
    assert line["event"] == "request"
    assert line["request_id"] == "log-line-1"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/common/version", 200)
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"
    assert "timestamp" in line


async def test_with_a_metrics_token_a_scrape_without_it_is_refused(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr("scrape-secret")}))
    async with app.test_app() as serving:
        client = serving.test_client()
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert "http_requests_total" in await allowed.get_data(as_text=True)


async def test_on_a_metrics_port_of_their_own_the_metrics_leave_the_api_port(settings: Settings) -> None:
    port = free_port()
    app = create_app(settings.model_copy(update={"metrics_port": port, "metrics_token": SecretStr("s3")}))
    async with app.test_app() as serving, aiohttp.ClientSession() as http:
        client = serving.test_client()
        await client.get("/api/common/health")
        assert (await client.get("/metrics")).status_code == 404
        async with http.get(f"http://127.0.0.1:{port}/metrics") as refused:
            assert refused.status == 401
        scrape = {"Authorization": "Bearer s3"}
        async with http.get(f"http://127.0.0.1:{port}/metrics", headers=scrape) as response:
            exposition = await response.text()
    assert 'http_requests_total{method="GET",route="/api/common/health",status="200"} 1.0' in exposition
    assert 'route="/metrics"' not in exposition

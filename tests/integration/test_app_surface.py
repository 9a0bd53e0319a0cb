"""CORS, the OpenAPI document and docs page, and the authentication hook point."""

from __future__ import annotations

from quart import Request
from quart.typing import TestClientProtocol as HttpClient
from werkzeug.datastructures import Headers

from app import create_app
from app.settings import Settings
from app.src.utils.problems import ProblemError
from app.state import app_state
from tests.support.probe import PREFIX, add_probe_routes


async def preflight(client: HttpClient, origin: str) -> Headers:
    response = await client.options(
        "/api/common/health", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
    )
    return response.headers


async def test_cors_answers_only_listed_origins(settings: Settings) -> None:
    origins = ("https://app.example", r"re:https://[a-z]+\.shop\.example\Z")
    app = create_app(settings.model_copy(update={"cors_origins": origins}))
    async with app.test_app() as serving:
        client = serving.test_client()
        assert (await preflight(client, "https://app.example"))["Access-Control-Allow-Origin"] == "https://app.example"
        allowed = await preflight(client, "https://eu.shop.example")
        assert allowed["Access-Control-Allow-Origin"] == "https://eu.shop.example"
        for refused in ("https://evil.example", "https://eu.shop.example.evil.test", "https://app.example.evil.test"):
            assert "Access-Control-Allow-Origin" not in await preflight(client, refused)
        simple = await client.get("/api/common/health", headers={"Origin": "https://app.example"})
        assert "X-Request-ID" in simple.headers["Access-Control-Expose-Headers"]
        assert "Access-Control-Allow-Credentials" not in simple.headers


async def test_no_cors_headers_without_an_allow_list(client: HttpClient) -> None:
    assert "Access-Control-Allow-Origin" not in await preflight(client, "https://app.example")


async def test_openapi_documents_the_routes_and_docs_page_is_served(client: HttpClient) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    assert {"/api/common/health", "/api/common/ready", "/api/common/version"} <= document["paths"].keys()
    assert "/metrics" not in document["paths"]
    health_schema = document["paths"]["/api/common/health"]["get"]["responses"]["200"]["content"]["application/json"]
    assert health_schema["schema"]["additionalProperties"] is False
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in await docs.get_data(as_text=True)


async def test_authenticators_run_after_the_client_id_and_can_refuse(settings: Settings) -> None:
    seen: list[str] = []

    async def only_bearer_alice(request: Request) -> None:
        seen.append(request.headers.get("X-Client-Id", ""))
        if request.headers.get("Authorization") != "Bearer alice":
            raise ProblemError(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})

    app = add_probe_routes(create_app(settings))
    app_state(app).guards.authenticators.append(only_bearer_alice)
    async with app.test_app() as serving:
        client = serving.test_client()
        refused = await client.get(f"{PREFIX}/whoami", headers={"X-Client-Id": "web"})
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        alice = {"X-Client-Id": "web", "Authorization": "Bearer alice"}
        accepted = await client.get(f"{PREFIX}/whoami", headers=alice)
        assert accepted.status_code == 200
        assert (await client.get(f"{PREFIX}/whoami")).status_code == 400
    assert seen == ["web", "web"]

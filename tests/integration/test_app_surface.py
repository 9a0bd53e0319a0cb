"""CORS, the OpenAPI document and docs page, and the order of the request guards."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from quart.typing import TestClientProtocol as HttpClient
from werkzeug.datastructures import Headers

from app import create_app
from app.routes.adapter import Access, access_of
from app.settings import ProfileNotSetError, Settings
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


async def test_a_preflight_to_a_guarded_route_is_answered_before_the_guards(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ("https://app.example",)}))
    async with app.test_app() as serving:
        client = serving.test_client()
        request = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "authorization, x-client-id, content-type"}  # fmt: skip
        preflight = await client.options("/api/auth/password", headers=request)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = {name.strip().lower() for name in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-client-id", "content-type", "idempotency-key"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]


async def test_a_429_from_the_rate_limit_can_be_read_by_an_allowed_origin(settings: Settings) -> None:
    limited = {"cors_origins": ("https://app.example",), "client_rate": 0.01, "client_burst": 1}
    app = create_app(settings.model_copy(update=limited))
    async with app.test_app() as serving:
        client = serving.test_client()
        headers = {"Origin": "https://app.example", "X-Client-Id": "browser"}
        await client.get("/api/auth/me", headers=headers)
        refused = await client.get("/api/auth/me", headers=headers)
    assert refused.status_code == 429
    assert refused.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]


async def test_every_answer_forbids_sniffing_and_running_it_and_docs_may_run_only_this_origins_scripts(
    client: HttpClient,
) -> None:
    for path in ("/api/common/health", "/api/nowhere", "/openapi.json", "/metrics"):
        answer = await client.get(path)
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert "Strict-Transport-Security" not in answer.headers  # plain HTTP: HSTS would be ignored
    docs = await client.get("/docs")
    policy = docs.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy


async def test_no_cors_headers_without_an_allow_list(client: HttpClient) -> None:
    assert "Access-Control-Allow-Origin" not in await preflight(client, "https://app.example")


async def test_the_openapi_document_is_valid_openapi(client: HttpClient) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    validate(document)  # raises on a dangling $ref, an unknown keyword, a malformed operation
    assert "FieldError" in document["components"]["schemas"]


async def test_openapi_documents_the_routes_and_docs_page_is_served(client: HttpClient) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    assert {"/api/common/health", "/api/common/ready", "/api/common/version"} <= document["paths"].keys()
    assert "/metrics" not in document["paths"]
    health_schema = document["paths"]["/api/common/health"]["get"]["responses"]["200"]["content"]["application/json"]
    assert health_schema["schema"]["additionalProperties"] is False
    docs = await client.get("/docs")
    assert docs.status_code == 200
    scripts = re.findall(r'<script src="([^"]+)"></script>', await docs.get_data(as_text=True))
    assert len(scripts) == 2  # the bundle and our start script, both from here: nothing inline
    bundle, start = [await client.get(script) for script in scripts]
    assert bundle.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "SwaggerUIBundle" in await bundle.get_data(as_text=True)
    assert "/openapi.json" in await start.get_data(as_text=True)
    assert (await client.get("/docs/assets/swagger-ui-5.31.0/../../openapi.json")).status_code == 404


async def test_a_guarded_route_asks_for_the_client_id_before_the_token(client: HttpClient) -> None:
    neither = await client.get("/api/auth/me")
    assert (neither.status_code, (await neither.get_json())["type"]) == (
        400,
        "urn:proving-ground:problem:missing-client-id",
    )
    no_token = await client.get("/api/auth/me", headers={"X-Client-Id": "web"})
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"] == 'Bearer realm="api"'


async def test_a_public_guarded_route_needs_the_client_id_but_no_token(settings: Settings) -> None:
    app = add_probe_routes(create_app(settings))
    async with app.test_app() as serving:
        client = serving.test_client()
        assert (await client.get(f"{PREFIX}/whoami")).status_code == 400
        answered = await client.get(f"{PREFIX}/whoami", headers={"X-Client-Id": "web"})
        assert (answered.status_code, await answered.get_json()) == (200, {"client_id": "web"})


def test_the_app_factory_refuses_an_environment_that_names_no_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROFILE", raising=False)
    with pytest.raises(ProfileNotSetError, match="PROFILE is not set"):
        create_app()  # as `uvicorn app:create_app --factory` calls it


def test_one_rule_says_what_each_path_asks_of_its_callers() -> None:
    assert access_of("/api/auth/me") is Access.GUARDED
    assert access_of("/api/auth/sessions/<uuid:session_id>") is Access.GUARDED
    assert access_of("/api/common/health") is Access.EXEMPT
    assert access_of("/metrics") is Access.EXEMPT
    assert access_of("/openapi.json") is Access.OPEN
    assert access_of("/docs") is Access.OPEN
    assert access_of("/nowhere") is Access.OPEN


async def test_openapi_documents_each_validated_body_and_each_declared_answer(client: HttpClient) -> None:
    """validate_body and responds document what they enforce: a route's body model and its answer's status."""
    paths = (await (await client.get("/openapi.json")).get_json())["paths"]

    def schema_of(content: dict[str, Any]) -> str:
        schema = content["application/json"]["schema"]
        return str(schema.get("title") or schema["$ref"].rpartition("/")[2])

    register = paths["/api/auth/register"]["post"]
    assert schema_of(register["requestBody"]["content"]) == "RegisterRequest"
    assert schema_of(register["responses"]["202"]["content"]) == "Accepted"
    refresh = paths["/api/auth/refresh"]["post"]
    assert schema_of(refresh["requestBody"]["content"]) == "RefreshRequest"
    assert schema_of(refresh["responses"]["200"]["content"]) == "TokenPair"
    assert schema_of(paths["/api/auth/me"]["get"]["responses"]["200"]["content"]) == "Me"

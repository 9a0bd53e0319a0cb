"""Every error is application/problem+json (RFC 9457) with the request id, and bad input changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as HttpClient

from tests.support.probe import PREFIX, SECRET_IN_EXCEPTION, add_probe_routes

CLIENT = {"X-Client-Id": "tests"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}


@pytest.fixture
async def probe(app: Quart) -> AsyncIterator[HttpClient]:
    add_probe_routes(app)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(await response.get_data())
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


@pytest.mark.requirement("NFR-5")
async def test_malformed_json_is_rejected_with_400_problem(probe: HttpClient) -> None:
    response = await probe.post(
        f"{PREFIX}/orders", data=b'{"quantity": 1,', headers={**CLIENT, "Content-Type": "application/json"}
    )
    body = await problem_of(response, 400)
    assert body["type"] == "urn:proving-ground:problem:malformed-json"
    assert body["instance"] == f"{PREFIX}/orders"


@pytest.mark.requirement("NFR-5")
async def test_body_that_is_not_json_is_rejected_with_415(probe: HttpClient) -> None:
    response = await probe.post(
        f"{PREFIX}/orders", data=b"quantity=1", headers={**CLIENT, "Content-Type": "application/x-www-form-urlencoded"}
    )
    body = await problem_of(response, 415)
    assert body["type"] == "urn:proving-ground:problem:unsupported-media-type"


@pytest.mark.requirement("NFR-5")
async def test_schema_violation_lists_each_failing_field_with_422(probe: HttpClient) -> None:
    response = await probe.post(f"{PREFIX}/orders", json={"note": 7}, headers=CLIENT)
    body = await problem_of(response, 422)
    failures = {error["pointer"]: error["code"] for error in body["errors"]}
    assert failures == {"/quantity": "missing", "/note": "string_type"}


@pytest.mark.requirement("NFR-5")
async def test_wrong_type_is_not_silently_coerced(probe: HttpClient) -> None:
    response = await probe.post(f"{PREFIX}/orders", json={"quantity": "5"}, headers=CLIENT)
    body = await problem_of(response, 422)
    assert [error["pointer"] for error in body["errors"]] == ["/quantity"]


@pytest.mark.requirement("NFR-5")
async def test_unknown_field_is_rejected(probe: HttpClient) -> None:
    response = await probe.post(f"{PREFIX}/orders", json={"quantity": 5, "admin": True}, headers=CLIENT)
    body = await problem_of(response, 422)
    assert body["errors"] == [
        {"pointer": "/admin", "detail": "Extra inputs are not permitted", "code": "extra_forbidden"}
    ]


@pytest.mark.requirement("NFR-5")
async def test_a_body_of_thousands_of_bad_fields_gets_a_short_answer_that_says_how_many_were_left_out(
    probe: HttpClient,
) -> None:
    body = json.dumps({f"k{index}": 0 for index in range(5000)}).encode()  # under the 64 KiB limit
    response = await probe.post(f"{PREFIX}/orders", data=body, headers={**CLIENT, "Content-Type": "application/json"})
    problem = await problem_of(response, 422)
    assert len(problem["errors"]) == 20
    assert problem["errors_omitted"] == 5001 - 20  # every unknown key, and the missing quantity
    assert len(await response.get_data()) < 4096


async def test_valid_body_reaches_the_handler(probe: HttpClient) -> None:
    response = await probe.post(f"{PREFIX}/orders", json={"quantity": 5, "note": "gift"}, headers=CLIENT)
    assert response.status_code == 201
    assert await response.get_json() == {"quantity": 5, "note": "gift"}


@pytest.mark.requirement("NFR-5")
async def test_body_over_the_limit_is_rejected_with_413(probe: HttpClient) -> None:
    oversized = json.dumps({"quantity": 1, "note": "x" * (64 * 1024)}).encode()
    response = await probe.post(
        f"{PREFIX}/orders", data=oversized, headers={**CLIENT, "Content-Type": "application/json"}
    )
    await problem_of(response, 413)


async def test_unknown_route_is_404_problem(probe: HttpClient) -> None:
    response = await probe.get("/api/nowhere", headers={"X-Request-ID": "trace-404"})
    body = await problem_of(response, 404)
    assert body["request_id"] == "trace-404"
    assert body["instance"] == "/api/nowhere"


async def test_wrong_method_is_405_problem_with_allow_header(probe: HttpClient) -> None:
    response = await probe.delete(f"{PREFIX}/orders", headers=CLIENT)
    await problem_of(response, 405)
    assert "POST" in response.headers["Allow"]


async def test_internal_error_is_500_problem_without_trace_or_exception_text(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/boom", headers=CLIENT)
    body = await problem_of(response, 500)
    text = await response.get_data(as_text=True)
    for leak in (SECRET_IN_EXCEPTION, "password_hash", "RuntimeError", "Traceback", 'File "'):
        assert leak not in text
    assert body["detail"].startswith("The server could not complete the request")


async def test_a_service_that_cannot_reach_its_provider_answers_503_with_retry_after(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/provider-down", headers=CLIENT)
    body = await problem_of(response, 503)
    assert response.headers["Retry-After"] == "30"
    assert (body["type"], body["title"]) == ("urn:proving-ground:problem:provider-down", "Service Unavailable")
    assert body["detail"] == "The payments provider is not answering; try again shortly."


async def test_handler_returning_other_than_its_documented_model_is_a_500(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/miswired", headers=CLIENT)
    await problem_of(response, 500)


async def test_missing_client_id_is_400_problem(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/whoami")
    body = await problem_of(response, 400)
    assert body["type"] == "urn:proving-ground:problem:missing-client-id"


@pytest.mark.parametrize("client_id", ["", " tests", "a" * 65, "tést", "-leading-dash", "x;drop"])
async def test_malformed_client_id_is_400_problem(probe: HttpClient, client_id: str) -> None:
    response = await probe.get(f"{PREFIX}/whoami", headers={"X-Client-Id": client_id})
    body = await problem_of(response, 400)
    assert body["type"] == "urn:proving-ground:problem:malformed-client-id"


async def test_well_formed_client_id_is_bound_for_the_handler(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/whoami", headers={"X-Client-Id": "mobile-app_2.1"})
    assert response.status_code == 200
    assert await response.get_json() == {"client_id": "mobile-app_2.1"}


async def test_common_routes_need_no_client_id(probe: HttpClient) -> None:
    response = await probe.get("/api/common/health")
    assert response.status_code == 200


@pytest.mark.requirement("NFR-5")
async def test_text_that_postgresql_cannot_store_is_refused_with_422(probe: HttpClient) -> None:
    body = json.dumps({"quantity": 1, "note": "nul \u0000 inside"}).encode()  # JSON escapes it as \\u0000
    response = await probe.post(f"{PREFIX}/orders", data=body, headers={**CLIENT, "Content-Type": "application/json"})
    problem = await problem_of(response, 422)
    assert [error["pointer"] for error in problem["errors"]] == ["/note"]
    lone_surrogate = b'{"quantity": 1, "note": "lone \\ud800 surrogate"}'
    response = await probe.post(
        f"{PREFIX}/orders", data=lone_surrogate, headers={**CLIENT, "Content-Type": "application/json"}
    )
    await problem_of(response, 400)  # not text at all: pydantic-core refuses it as JSON

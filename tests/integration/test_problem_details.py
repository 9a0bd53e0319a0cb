"""Each problem answer of the HTTP layer, whole: status, type, title, detail, the headers it owes the client and
the extensions it carries. test_errors.py proves which answer each bad request gets; these prove what they say."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from quart import Quart
from quart.typing import TestClientProtocol as HttpClient

from tests.support.probe import PREFIX, SMALL_BODY_BYTES, add_probe_routes

CLIENT = {"X-Client-Id": "tests"}
JSON = {**CLIENT, "Content-Type": "application/json"}


@pytest.fixture
async def probe(app: Quart) -> AsyncIterator[HttpClient]:
    add_probe_routes(app)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def problem(response: Any) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(await response.get_data())
    assert body.pop("request_id") == response.headers["X-Request-ID"]
    return body


def order_of(size: int) -> bytes:
    """A valid order whose JSON is exactly `size` bytes."""
    empty = b'{"quantity": 1, "note": ""}'
    return empty[:-2] + b"x" * (size - len(empty)) + b'"}'


@pytest.mark.requirement("NFR-5")
async def test_a_body_of_exactly_the_routes_limit_is_read_and_one_byte_more_is_413(probe: HttpClient) -> None:
    for announced in (False, True):  # with a Content-Length, and without one (read, then counted)
        for size, status in ((SMALL_BODY_BYTES, 201), (SMALL_BODY_BYTES + 1, 413)):
            length = {"Content-Length": str(size)} if announced else {}
            response = await probe.post(f"{PREFIX}/small-orders", data=order_of(size), headers={**JSON, **length})
            assert response.status_code == status, (announced, size)
    assert (await problem(response))["title"] == "Request Entity Too Large"


@pytest.mark.requirement("NFR-5")
async def test_a_body_that_is_not_json_gets_415_saying_what_to_send(probe: HttpClient) -> None:
    response = await probe.post(f"{PREFIX}/orders", data=b"quantity=1",
                                headers={**CLIENT, "Content-Type": "text/plain"})  # fmt: skip
    assert response.status_code == 415
    assert response.headers["Accept-Post"] == "application/json"
    assert await problem(response) == {
        "type": "urn:proving-ground:problem:unsupported-media-type",
        "title": "Unsupported Media Type",
        "status": 415,
        "detail": "The request body must be JSON, sent with Content-Type: application/json.",
        "instance": f"{PREFIX}/orders",
    }


@pytest.mark.parametrize("media_type", ["application/merge-patch+json", "application/vnd.api+json"])
async def test_a_json_media_type_with_a_suffix_is_json(probe: HttpClient, media_type: str) -> None:
    response = await probe.post(f"{PREFIX}/orders", data=b'{"quantity": 2}',
                                headers={**CLIENT, "Content-Type": media_type})  # fmt: skip
    assert response.status_code == 201


async def test_malformed_json_and_a_schema_mismatch_say_which_it_was(probe: HttpClient) -> None:
    malformed = await probe.post(f"{PREFIX}/orders", data=b'{"quantity": ', headers=JSON)
    assert await problem(malformed) == {
        "type": "urn:proving-ground:problem:malformed-json",
        "title": "Bad Request",
        "status": 400,
        "detail": "The request body is not valid JSON.",
        "instance": f"{PREFIX}/orders",
    }
    mismatch = await probe.post(f"{PREFIX}/orders", data=b'{"quantity": "many"}', headers=JSON)
    body = await problem(mismatch)
    assert (body["status"], body["title"], body["detail"]) == (
        422,
        "Validation failed",
        "The request body does not match the schema.",
    )
    assert "errors_omitted" not in body  # every failing field is listed


async def test_a_problem_with_no_type_or_title_is_about_blank_with_the_status_phrase(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/plain-problem", headers=CLIENT)
    assert response.status_code == 409
    assert response.headers["X-Probe"] == "yes"
    assert await problem(response) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Plainly in conflict.",
        "instance": f"{PREFIX}/plain-problem",
        "hint": "wait",
    }


async def test_an_http_exception_without_a_description_is_detailed_by_its_name(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/wordless-404", headers=CLIENT)
    assert response.status_code == 404
    body = await problem(response)
    assert (body["type"], body["title"], body["detail"]) == ("about:blank", "Not Found", "Not Found")


async def test_a_known_route_with_another_method_names_the_method(probe: HttpClient) -> None:
    response = await probe.delete(f"{PREFIX}/orders", headers=CLIENT)
    body = await problem(response)
    assert (body["title"], body["detail"]) == (
        "Method Not Allowed",
        "The method is not allowed for the requested URL.",
    )


@pytest.mark.parametrize(
    ("reason", "challenge"),
    [
        ("missing-token", 'Bearer realm="api"'),
        ("invalid-token", 'Bearer realm="api", error="invalid_token"'),
        ("invalid-credentials", None),
        ("invalid-code", None),
    ],
)
async def test_a_bearer_challenge_only_where_a_token_was_missing_or_not_valid(
    probe: HttpClient, reason: str, challenge: str | None
) -> None:
    response = await probe.get(f"{PREFIX}/unauthorized/{reason}", headers=CLIENT)
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == challenge


async def test_bad_query_parameters_get_400_with_each_field(probe: HttpClient) -> None:
    response = await probe.get(f"{PREFIX}/page?limit=ten", headers=CLIENT)
    assert response.status_code == 400
    body = await problem(response)
    assert (body["type"], body["title"], body["detail"]) == (
        "urn:proving-ground:problem:invalid-parameters",
        "Invalid request parameters",
        "The request's parameters do not match the schema.",
    )
    assert [error["pointer"] for error in body["errors"]] == ["/limit"]


async def test_an_unhandled_exception_is_logged_with_its_path_and_trace_and_answered_500(probe: HttpClient) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await probe.get(f"{PREFIX}/boom", headers=CLIENT)
    body = await problem(response)
    assert (body["status"], body["title"], body["type"]) == (500, "Internal Server Error", "about:blank")
    [entry] = [entry for entry in logs if entry["log_level"] == "error"]
    assert (entry["event"], entry["path"]) == ("unhandled exception", f"{PREFIX}/boom")
    assert isinstance(entry["exc_info"], RuntimeError)


@pytest.mark.requirement("NFR-5")
async def test_a_body_that_is_not_utf8_is_malformed_not_silently_repaired(probe: HttpClient) -> None:
    response = await probe.post(f"{PREFIX}/orders", data=b'{"quantity": 1, "note": "caf\xe9"}', headers=JSON)
    assert response.status_code == 400
    assert (await problem(response))["type"] == "urn:proving-ground:problem:malformed-json"

"""NFR-5: schemathesis fuzzes every operation of the OpenAPI document against the running service (real
uvicorn, real PostgreSQL): no generated input may cause a 5xx, and every answer must match what the document
says (its status, its content type, its schema)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.processes import clean_environment, free_port


def _post(url: str, body: dict[str, str]) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", "X-Client-Id": "fuzz"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


# CI replays the same examples every run (a submission must not fail on a new draw); locally each run explores.
IN_CI = os.environ.get("CI") == "true"
POLICY_CHECKED = {"/api/auth/register", "/api/auth/password"}


@pytest.fixture(scope="module")
def live_service(database_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    environment = clean_environment(
        PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port), CLIENT_RATE="off", LOG_LEVEL="WARNING"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=environment,
        cwd=tmp_path_factory.mktemp("fuzz"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/common/health", timeout=1).close()  # noqa: S310
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.1)  # waiting for another process to listen: there is no event to await
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def bearer(live_service: str) -> str:
    account = {"email": "fuzz@example.org", "password": "a long fuzzing passphrase", "display_name": "Fuzz"}
    _post(f"{live_service}/api/auth/register", account)
    tokens = _post(f"{live_service}/api/auth/login", {"email": account["email"], "password": account["password"]})
    return str(tokens["access_token"])


@pytest.fixture(scope="module")
def live_schema(live_service: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_service}/openapi.json")


@pytest.mark.requirement("NFR-5")
def test_no_input_causes_a_server_error_and_every_answer_matches_the_document(live_schema: Any, bearer: str) -> None:
    tested = []
    for result in live_schema.get_all_operations():
        operation = result.ok()
        tested.append(f"{operation.method.upper()} {operation.path}")

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            database=None,
            derandomize=IN_CI,
        )
        def exchange(case: Case[Any]) -> None:
            headers = {"X-Client-Id": "fuzz", "Authorization": f"Bearer {bearer}"} | dict(case.headers or {})
            if case.path in {"/api/auth/logout", "/api/auth/logout-all"}:
                headers["Authorization"] = "Bearer not-the-shared-session"  # keep the shared session alive
            # A password can be schema-valid and still one of the most common ones, which JSON Schema cannot say.
            excluded: list[Any] = [positive_data_acceptance] if case.path in POLICY_CHECKED else []
            case.call_and_validate(headers=headers, excluded_checks=excluded)

        exchange()
    assert "POST /api/auth/login" in tested
    assert len(tested) >= 16

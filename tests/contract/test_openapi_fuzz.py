"""NFR-5: schemathesis fuzzes every operation of the OpenAPI document against the running service (real
uvicorn, real PostgreSQL): no generated input may cause a 5xx, and every answer must match what the document
says (its status, its content type, its schema).

Against `API_URL` when it is set (the compose topology's `api` container, its rate limits off as below; accounts
made in its database, `API_DB_URI`), else against `python -m app serve` started here.

The fuzzer calls as a signed-in account with TOTP enrolled, so that the authenticated and second-factor routes are
reached past their guards: the account's password is put into the bodies that ask for it (except a new password,
which would lock the fuzzer out of its own account), and every logout gets a session of its own. How many
generated cases of each operation got past authentication is written to `.data/contract-report.txt`, and each
guarded operation must have had some.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pyotp
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from simulators.server import BackgroundSimulator, build
from tests.support.catalog import catalog_simulator
from tests.support.postgres import repository_root
from tests.support.processes import clean_environment, free_port
from tests.support.simulator_fixtures import API_KEY

# CI replays the same examples every run (a submission must not fail on a new draw); locally each run explores.
IN_CI = os.environ.get("CI") == "true"
POLICY_CHECKED = {"/api/auth/register", "/api/auth/password"}
ENDS_A_SESSION = {"/api/auth/logout", "/api/auth/logout-all"}
PASSWORD = "a long fuzzing passphrase"
REPORT = repository_root() / ".data" / "contract-report.txt"


API_URL = os.environ.get("API_URL")
API_CA_FILE = os.environ.get("API_CA_FILE")


def _tls() -> ssl.SSLContext | None:
    """The deployment's certificate when API_CA_FILE names it: its chain and its name checked."""
    return None if API_CA_FILE is None else ssl.create_default_context(cafile=API_CA_FILE)


def _call(url: str, body: dict[str, str], token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", "X-Client-Id": "fuzz"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)  # noqa: S310 - ours
    with urllib.request.urlopen(request, timeout=10, context=_tls()) as response:  # noqa: S310
        return json.loads(response.read())


@pytest.fixture(scope="module")
def catalog_url() -> Iterator[str]:
    with catalog_simulator() as url:
        yield url


@pytest.fixture(scope="module")
def payments_url() -> Iterator[str]:
    with BackgroundSimulator(build("payments", {"seed": 3, "rules": []})) as running:
        yield running.url


@pytest.fixture(scope="module")
def live_service(
    database_uri: str, catalog_url: str, payments_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service as deployed, its catalog mirrored once (as an operator would: `python -m app jobs run`)."""
    if API_URL is not None:  # deployed with its worker, which mirrors the catalog
        yield API_URL.rstrip("/")
        return
    port = free_port()
    environment = clean_environment(
        PROFILE="test", DB_URI=database_uri, LISTEN_PORT=str(port), LOG_LEVEL="WARNING",
        CLIENT_RATE="off", ADDRESS_RATE="off", CONNECTIONS_PER_PEER="off",
        LOGIN_FAILURES_PER_BURST="1000000", LOGIN_FAILURES_PER_HOUR="1000000",
        CATALOG_URL=catalog_url, CATALOG_API_KEY=API_KEY,
        PAYMENTS_URL=payments_url, PAYMENTS_API_KEY=API_KEY, PAYMENTS_WEBHOOK_SECRETS="whsec_fuzz",
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "app", "jobs", "run", "catalog_sync"], check=True, capture_output=True, timeout=60,
        env=environment, cwd=tmp_path_factory.mktemp("sync"),
    )  # fmt: skip
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


def _signed_in(base: str, email: str) -> str:
    return str(_call(f"{base}/api/auth/login", {"email": email, "password": PASSWORD})["access_token"])


@pytest.fixture(scope="module")
def accounts(live_service: str, database_uri: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Verified accounts, made as an operator makes them (`python -m app users create`)."""
    run = uuid.uuid4().hex[:8]  # a deployed database outlives the run: accounts of its own
    emails = [f"fuzz-{run}@example.org", f"fuzz-logout-{run}@example.org"]
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "app", "users", "create", *emails, "--display-name", "Fuzz"],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=60,
        env=clean_environment(PROFILE="test", DB_URI=os.environ.get("API_DB_URI", database_uri)),
        cwd=tmp_path_factory.mktemp("accounts"),
    )  # fmt: skip
    return emails


@pytest.fixture(scope="module")
def enrolled_bearer(live_service: str, accounts: list[str]) -> str:
    """The access token of an account with TOTP on."""
    token = _signed_in(live_service, accounts[0])
    secret = _call(f"{live_service}/api/auth/totp/enrol", {"password": PASSWORD}, token)["secret"]
    _call(f"{live_service}/api/auth/totp/confirm", {"code": pyotp.TOTP(secret).now(), "password": PASSWORD}, token)
    return token


@pytest.fixture(scope="module")
def live_schema(live_service: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_service}/openapi.json", verify=API_CA_FILE or True)


@dataclass
class Reach:
    """Per operation: generated cases, and (for those that need a token) the cases that got past authentication."""

    cases: Counter[str] = field(default_factory=Counter)
    past_authentication: Counter[str] = field(default_factory=Counter)
    guarded: set[str] = field(default_factory=set)

    def declare(self, operation: str, needs_token: bool) -> None:
        if needs_token:
            self.guarded.add(operation)

    def count(self, operation: str, response: Any) -> None:
        self.cases[operation] += 1
        refused_token = response.status_code == 401 and "Bearer" in response.headers.get("WWW-Authenticate", "")
        if operation in self.guarded and not refused_token:
            self.past_authentication[operation] += 1

    def report(self) -> str:
        lines = [f"{'operation':<40}{'cases':>7}{'past authentication':>22}"]
        for operation, cases in sorted(self.cases.items()):
            reached = str(self.past_authentication[operation]) if operation in self.guarded else "(public)"
            lines.append(f"{operation:<40}{cases:>7}{reached:>22}")
        return "\n".join(lines) + "\n"


def _with_password(case: Case[Any]) -> None:
    """The account's password where a body asks for it again (not a new password: that would end the fuzzing)."""
    if isinstance(case.body, dict) and "password" in case.body and case.path != "/api/auth/register":
        case.body["password"] = PASSWORD


def _beyond_the_schema(case: Case[Any]) -> bool:
    """A case the document allows that a rule JSON Schema cannot say may refuse: a password that is one of the most
    common ones, a catalog cursor (only the API mints them), a price range whose minimum is above its maximum; and
    every billing write (an idempotency key used before for another request, a refund of more than is left, an
    event without the provider's signature)."""
    if case.path in POLICY_CHECKED or (case.path.startswith("/api/billing/") and case.method.upper() == "POST"):
        return True
    query = case.query or {}
    low, high = query.get("min_price"), query.get("max_price")
    prices_crossed = isinstance(low, int) and isinstance(high, int) and low > high
    return case.path == "/api/catalog/items" and ("cursor" in query or prices_crossed)


def _client_id(case: Case[Any]) -> dict[str, str]:
    """The X-Client-Id every request needs, unless the case breaks its headers on purpose: one that leaves the header
    out must go without it (filled in, the request was valid, and a 200 to it was reported as bad data accepted)."""
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta is not None else None
    return {} if header is not None and header.mode is GenerationMode.NEGATIVE else {"X-Client-Id": "fuzz"}


def _fuzz(operation: Any, reach: Reach, service: str, bearer: str, logout_account: str) -> None:
    name = f"{operation.method.upper()} {operation.path}"
    needs_token = bool(operation.definition.raw.get("security"))
    reach.declare(name, needs_token)

    # Both what the document allows (which must be served) and what it forbids (which must be refused, with 4xx).
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        database=None,
        derandomize=IN_CI,
    )
    def exchange(case: Case[Any]) -> None:
        token = bearer
        if case.path in ENDS_A_SESSION:  # a session of its own, which the call may end
            token = _signed_in(service, logout_account)
        headers = _client_id(case) | {"Authorization": f"Bearer {token}"} | dict(case.headers or {})
        _with_password(case)
        excluded: list[Any] = [positive_data_acceptance] if _beyond_the_schema(case) else []
        answer = case.call_and_validate(headers=headers, excluded_checks=excluded, verify=API_CA_FILE or True)
        reach.count(name, answer)

    exchange()


@pytest.mark.requirement("NFR-5")
def test_no_input_causes_a_server_error_and_every_answer_matches_the_document(
    live_schema: Any, live_service: str, enrolled_bearer: str, accounts: list[str]
) -> None:
    reach = Reach()
    for result in live_schema.get_all_operations():
        _fuzz(result.ok(), reach, live_service, enrolled_bearer, accounts[1])
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(reach.report())
    assert "POST /api/auth/login" in reach.cases
    assert len(reach.cases) >= 16
    unreached = sorted(name for name in reach.guarded if not reach.past_authentication[name])
    assert unreached == [], reach.report()

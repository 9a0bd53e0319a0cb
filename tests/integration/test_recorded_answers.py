"""Every route's answers, success and error, recorded once and compared byte for byte ever after.

A refactoring must not change what a client sees. This test replays a fixed script of requests (each route's
success and its error cases) and compares each raw answer — status, headers in order, body — with
`recorded_answers.json`. Only what differs between runs by design is masked: random tokens, ids, secrets and
times (and, where a body holds one of those, its Content-Length). `RECORD_ANSWERS=1` writes the file anew, for a
change of behaviour that is meant: review its diff like code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from quart import Blueprint
from quart.typing import TestClientProtocol as HttpClient

from app import create_app
from app.http.authentication import public
from app.settings import Settings
from app.src.encryption.tokens import TokenKeyRing
from app.src.encryption.totp import STEP_SECONDS, code_at
from tests.integration.auth_support import NEW_KEY, OLD_KEY, PASSWORD, auth_settings, latest_link
from tests.support.postgres import truncate_all
from tests.support.probe import PREFIX, add_probe_routes

RECORDING = Path(__file__).with_name("recorded_answers.json")
EMAIL = "ada@example.org"
NEW_PASSWORD = "a brand new passphrase"

_MASKS = [
    (re.compile(r"v1\.k[12]\.[A-Za-z0-9_-]+"), "<sealed-token>"),
    (re.compile(r'"refresh_token":"[A-Za-z0-9_-]+"'), '"refresh_token":"<refresh-token>"'),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r'"secret":"[A-Z2-7]+"'), '"secret":"<totp-secret>"'),
    (re.compile(r"secret=[A-Z2-7]+"), "secret=<totp-secret>"),
    (re.compile(r"\b[2-9a-z]{4}-[2-9a-z]{4}-[2-9a-z]{4}\b"), "<recovery-code>"),
]
_VARIABLE_LENGTH = ("<time>",)  # a masked value whose length differs between runs
_NOT_RECORDED_HEADERS = {"date", "server"}


def _mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _without_probe_routes(document: str) -> str:
    """The OpenAPI document as a client sees it: without the routes that only tests add (tests/support/probe.py)."""
    parsed = json.loads(document)
    parsed["paths"] = {path: item for path, item in parsed["paths"].items() if not path.startswith(PREFIX)}
    return json.dumps(parsed, separators=(",", ":")) + "\n"


def _step() -> int:
    return int(time.time() // STEP_SECONDS)


def _not_the_code(secret: str, step: int) -> str:
    """A code that is wrong for `step` and its neighbours."""
    valid = {code_at(secret, near) for near in (step - 1, step, step + 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


@dataclass
class Recorder:
    client: HttpClient
    answers: dict[str, Any] = field(default_factory=dict)

    async def __call__(
        self,
        label: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        client_id: str | None = "web-1",
        only_comments: bool = False,
        mask_retry_after: bool = False,
        **options: Any,
    ) -> Any:
        """Send one request with a request id of its own and record its answer under `label`."""
        assert label not in self.answers, f"label used twice: {label}"
        headers = dict(options.pop("headers", {}))
        # Named after the label, not the position: a request added to the script changes no other recording.
        headers["X-Request-ID"] = "rec-" + hashlib.sha256(label.encode()).hexdigest()[:12]
        if client_id is not None:
            headers["X-Client-Id"] = client_id
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.open(path, method=method, headers=headers, **options)
        raw = await response.get_data(as_text=True)
        body = _mask(_without_probe_routes(raw) if path == "/openapi.json" else raw)
        if only_comments:  # a metrics exposition: its families, not its changing numbers
            body = "\n".join(line for line in body.splitlines() if line.startswith("#"))
        recorded_headers = []
        for name, value in response.headers.items():
            if name.lower() in _NOT_RECORDED_HEADERS:
                continue
            if name.lower() == "content-length" and (
                only_comments or any(marker in body for marker in _VARIABLE_LENGTH)
            ):
                value = "<varies>"
            if name.lower() == "content-length" and path == "/openapi.json":
                value = "<with the probe routes>"
            if name.lower() == "retry-after" and mask_retry_after:
                value = "<seconds>"
            if name.lower() == "allow":  # werkzeug lists the methods from a set: their order changes between runs
                value = ", ".join(sorted(value.split(", ")))
            recorded_headers.append([name, _mask(value)])
        self.answers[label] = {"status": response.status_code, "headers": recorded_headers, "body": body}
        return json.loads(raw) if (response.mimetype or "").endswith("json") and raw else None


@pytest.fixture
async def serving_settings(settings: Settings, database_uri: str) -> AsyncIterator[Settings]:
    await truncate_all(database_uri)  # user and session ids start from 1, as in the recording
    yield auth_settings(settings, login_failures_per_burst=4)
    await truncate_all(database_uri)


async def _record_common_and_edge(record: Recorder) -> None:
    await record("health", "GET", "/api/common/health", client_id=None)
    await record("ready", "GET", "/api/common/ready", client_id=None)
    await record("version", "GET", "/api/common/version", client_id=None)
    await record("openapi document", "GET", "/openapi.json", client_id=None)
    await record("docs page", "GET", "/docs", client_id=None)
    await record("docs start script", "GET", "/docs/assets/swagger-ui-5.31.0/start.js", client_id=None)
    await record("unknown route: 404", "GET", "/api/nowhere")
    await record("wrong method: 405", "DELETE", "/api/common/health")
    await record("unhandled error: 500", "GET", f"{PREFIX}/boom")
    body = {"email": EMAIL, "password": PASSWORD, "display_name": "Ada"}
    await record("no client id: 400", "POST", "/api/auth/register", client_id=None, json=body)
    await record("malformed client id: 400", "POST", "/api/auth/register", client_id="-bad id", json=body)
    await record(
        "not JSON: 415", "POST", "/api/auth/register", data=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    await record(
        "malformed JSON: 400", "POST", "/api/auth/register", data=b'{"email":',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    await record(
        "schema violations: 422", "POST", "/api/auth/register", json={"email": 7, "password": PASSWORD, "admin": True}
    )
    oversized = json.dumps({**body, "display_name": "x" * (64 * 1024)}).encode()
    await record(
        "body too large: 413", "POST", "/api/auth/register", data=oversized,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip


async def _record_accounts(record: Recorder) -> dict[str, Any]:
    body = {"email": EMAIL, "password": PASSWORD, "display_name": "Ada"}
    await record("register", "POST", "/api/auth/register", json=body)
    await record("sign in before confirming the address: 403", "POST", "/api/auth/login",
                 json={"email": EMAIL, "password": PASSWORD})  # fmt: skip
    link = await latest_link(record.client, EMAIL)
    assert link is not None
    await record("confirm the address", "GET", link, client_id=None)
    await record("confirm the address again: 410", "GET", link, client_id=None)
    await record("a forged confirmation link: 404", "GET", "/links/verify-email?token=v1.k2.forged", client_id=None)
    await record("register a taken address", "POST", "/api/auth/register", json={**body, "password": NEW_PASSWORD})
    await record("register a weak password: 422", "POST", "/api/auth/register",
                 json={**body, "email": "bob@example.org", "password": "baseball"})  # fmt: skip
    await record("sign in, wrong password: 401", "POST", "/api/auth/login",
                 json={"email": EMAIL, "password": "not my passphrase"})  # fmt: skip
    await record("sign in, unknown address: 401", "POST", "/api/auth/login",
                 json={"email": "nobody@example.org", "password": PASSWORD})  # fmt: skip
    first: dict[str, Any] = await record(
        "sign in", "POST", "/api/auth/login", json={"email": EMAIL, "password": PASSWORD}
    )
    token = first["access_token"]
    await record("me", "GET", "/api/auth/me", token=token)
    await record("me without a token: 401", "GET", "/api/auth/me")
    await record("me with a malformed token: 401", "GET", "/api/auth/me", token="v1.k2.not-a-token")
    claims = TokenKeyRing([NEW_KEY, OLD_KEY]).open("access", token)
    expired = TokenKeyRing([NEW_KEY, OLD_KEY]).seal("access", {**claims, "exp": int(time.time()) - 1})
    await record("me with an expired token: 401", "GET", "/api/auth/me", token=expired)
    return first


async def _record_sessions(record: Recorder, first: dict[str, Any]) -> None:
    token = first["access_token"]
    await record("sign in from a phone", "POST", "/api/auth/login", client_id="phone",
                 json={"email": EMAIL, "password": PASSWORD})  # fmt: skip
    listing = await record("sessions", "GET", "/api/auth/sessions", token=token)
    phone = next(session["id"] for session in listing["sessions"] if session["client_id"] == "phone")
    await record("revoke a session", "DELETE", f"/api/auth/sessions/{phone}", token=token)
    await record("revoke an unknown session: 404", "DELETE", f"/api/auth/sessions/{uuid.UUID(int=0)}", token=token)
    await record("revoke a malformed session id: 404", "DELETE", "/api/auth/sessions/not-a-uuid", token=token)
    refreshed = await record("refresh", "POST", "/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    await record("refresh with a spent token: 401", "POST", "/api/auth/refresh",
                 json={"refresh_token": first["refresh_token"]})  # fmt: skip
    await record("refresh with an unknown token: 401", "POST", "/api/auth/refresh", json={"refresh_token": "x" * 43})
    await record("me after the session ended: 401", "GET", "/api/auth/me", token=refreshed["access_token"])


async def _record_password(record: Recorder) -> str:
    signed_in = await record("sign in again", "POST", "/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    token = signed_in["access_token"]
    await record("change password, wrong current: 403", "POST", "/api/auth/password", token=token,
                 json={"current_password": "not it", "new_password": NEW_PASSWORD})  # fmt: skip
    await record("change password, weak new: 422", "POST", "/api/auth/password", token=token,
                 json={"current_password": PASSWORD, "new_password": "password1"})  # fmt: skip
    await record("change password", "POST", "/api/auth/password", token=token,
                 json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})  # fmt: skip
    return str(token)


async def _record_totp(record: Recorder, token: str) -> None:
    again = {"password": NEW_PASSWORD}
    await record("confirm TOTP before enrolling: 409", "POST", "/api/auth/totp/confirm", token=token,
                 json={"code": "123456", **again})  # fmt: skip
    await record("enrol TOTP without the password: 422", "POST", "/api/auth/totp/enrol", token=token, json={})
    await record("enrol TOTP with a wrong password: 403", "POST", "/api/auth/totp/enrol", token=token,
                 json={"password": "not it"})  # fmt: skip
    enrolment = await record("enrol TOTP", "POST", "/api/auth/totp/enrol", token=token, json=again)
    secret = enrolment["secret"]
    await record("confirm TOTP, wrong code: 401", "POST", "/api/auth/totp/confirm", token=token,
                 json={"code": _not_the_code(secret, _step() - 1), **again})  # fmt: skip
    await record("confirm TOTP, a code in other digits: 422", "POST", "/api/auth/totp/confirm", token=token,
                 json={"code": "\uff11\uff12\uff13\uff14\uff15\uff16", **again})  # fmt: skip
    codes = await record("confirm TOTP", "POST", "/api/auth/totp/confirm", token=token,
                         json={"code": code_at(secret, _step() - 1), **again})  # fmt: skip
    await record("enrol TOTP when enabled: 409", "POST", "/api/auth/totp/enrol", token=token, json=again)
    credentials = {"email": EMAIL, "password": NEW_PASSWORD}
    challenge = (await record("sign in with TOTP: 202", "POST", "/api/auth/login", json=credentials))["challenge"]
    await record("answer a malformed challenge: 401", "POST", "/api/auth/login/totp",
                 json={"challenge": "v1.k2.forged", "code": "123456"})  # fmt: skip
    await record("answer with a wrong code: 401", "POST", "/api/auth/login/totp",
                 json={"challenge": challenge, "recovery_code": "0000-0000-0000"})  # fmt: skip
    await record("answer with a code", "POST", "/api/auth/login/totp",
                 json={"challenge": challenge, "code": code_at(secret, _step())})  # fmt: skip
    await record("answer an answered challenge: 401", "POST", "/api/auth/login/totp",
                 json={"challenge": challenge, "recovery_code": codes["recovery_codes"][1]})  # fmt: skip
    challenge = (await record("sign in with TOTP again", "POST", "/api/auth/login", json=credentials))["challenge"]
    await record("answer with a recovery code", "POST", "/api/auth/login/totp",
                 json={"challenge": challenge, "recovery_code": codes["recovery_codes"][0]})  # fmt: skip
    await record("disable TOTP, wrong code: 401", "POST", "/api/auth/totp/disable", token=token,
                 json={"code": _not_the_code(secret, _step() + 1), **again})  # fmt: skip
    await record("disable TOTP", "POST", "/api/auth/totp/disable", token=token,
                 json={"code": code_at(secret, _step() + 1), **again})  # fmt: skip


async def _record_endings(record: Recorder, token: str) -> None:
    credentials = {"email": EMAIL, "password": NEW_PASSWORD}
    other = await record("sign in on a laptop", "POST", "/api/auth/login", client_id="laptop", json=credentials)
    await record("log out", "POST", "/api/auth/logout", token=token, json={})
    await record("log out everywhere", "POST", "/api/auth/logout-all", token=other["access_token"], json={})
    wrong = {"email": "locked@example.org", "password": "not the passphrase"}
    for attempt in range(1, 4):
        await record(f"failed sign-in {attempt} of a locked address", "POST", "/api/auth/login", json=wrong)
    await record("failed sign-in 4 of a locked address", "POST", "/api/auth/login", json=wrong)
    await record("sign in to a locked address: 429", "POST", "/api/auth/login", json=wrong, mask_retry_after=True)


async def test_every_answer_matches_the_recording(
    serving_settings: Settings, database_uri: str, empty_database_uri: str
) -> None:
    app = add_probe_routes(create_app(serving_settings))
    async with app.test_app() as serving:
        record = Recorder(serving.test_client())
        await _record_common_and_edge(record)
        first = await _record_accounts(record)
        await _record_sessions(record, first)
        token = await _record_password(record)
        await _record_totp(record, token)
        await _record_endings(record, token)
        await record("metrics", "GET", "/metrics", client_id=None, only_comments=True)
    answers = record.answers

    limited = create_app(serving_settings.model_copy(update={"client_rate": 0.01, "client_burst": 2}))
    async with limited.test_app() as serving:
        record = Recorder(serving.test_client())
        for attempt in (1, 2, 3):
            await record(f"rate limited client, request {attempt}", "GET", "/api/auth/me")
        answers |= record.answers

    unmigrated = create_app(serving_settings.model_copy(update={"db_uri": SecretStr(empty_database_uri)}))
    async with unmigrated.test_app() as serving:
        record = Recorder(serving.test_client())
        await record("ready without migrations: 503", "GET", "/api/common/ready", client_id=None)
        answers |= record.answers

    answers |= await _record_shed_request(serving_settings)
    if os.environ.get("RECORD_ANSWERS") == "1":
        RECORDING.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
    recorded = json.loads(RECORDING.read_text())
    assert list(answers) == list(recorded)
    for label, answer in answers.items():
        assert answer == recorded[label], label


async def _record_shed_request(settings: Settings) -> dict[str, Any]:
    gate = asyncio.Event()
    held = Blueprint("held", __name__)

    @held.get("/hold")
    @public
    async def hold() -> dict[str, str]:
        await gate.wait()
        return {"held": "yes"}

    app = create_app(settings.model_copy(update={"inbound_concurrency": 1, "inbound_max_wait": 0.0}))
    app.register_blueprint(held, url_prefix="/api/held")
    async with app.test_app() as serving:
        client = serving.test_client()
        holding = asyncio.create_task(client.get("/api/held/hold", headers={"X-Client-Id": "web-1"}))
        for _ in range(20):
            await asyncio.sleep(0)
        record = Recorder(client)
        await record("over the concurrency limit: 503", "GET", "/api/held/hold")
        gate.set()
        await holding
    return record.answers

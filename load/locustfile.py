"""The load test's simulated clients, run by Locust (`python -m load` starts it with the LOAD_* variables below).

Each simulated user is one client application: its own `X-Client-Id`, one account (some with TOTP) signed in once,
its access token refreshed as it nears expiry (the refresh token is single use), and journeys weighted like real
traffic: browsing the catalog (lists with filters, a next page, items re-read with the `ETag` seen), reading its
account, and paying with an `Idempotency-Key` that it sends again on a timeout or a 5xx, as a real client must,
then reading the payment. Requests are named by route template. Shed (503) and rate-limited (429) answers are
failures of their own kinds, which the SLO gate counts apart from errors.

Variables: LOAD_PROFILE (name or path), LOAD_ACCOUNTS (the JSON of `python -m load accounts`), LOAD_PASSWORD,
LOAD_CA_FILE or LOAD_INSECURE=1, LOAD_PROCESSES, LOAD_STATS_DIR (where each process writes its journey count).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import pyotp
from locust import HttpUser, LoadTestShape, constant_throughput, events
from locust.runners import WorkerRunner

from load.accounts import read_accounts
from load.profile import load_profile
from load.slo import RATE_LIMITED, SHED

PROFILE = load_profile(os.environ["LOAD_PROFILE"])
ACCOUNTS = read_accounts(Path(os.environ["LOAD_ACCOUNTS"]))
PASSWORD = os.environ["LOAD_PASSWORD"]
VERIFY: bool | str = False if os.environ.get("LOAD_INSECURE") == "1" else os.environ.get("LOAD_CA_FILE") or True
PROCESSES = int(os.environ.get("LOAD_PROCESSES", "1"))
STATS_DIR = Path(os.environ["LOAD_STATS_DIR"])
REFRESH_BEFORE_SECONDS = 30
PAY_ATTEMPTS = 4
RETRIED_STATUSES = {0, 500, 502, 503, 504}  # 0: no answer (a timeout or a reset)
_accounts = itertools.count()
_journeys_started = 0


class Shape(LoadTestShape):
    """Users over time, as the profile's stages say."""

    def tick(self) -> tuple[int, float] | None:
        return PROFILE.target_at(self.get_run_time())  # type: ignore[no-untyped-call]


class Client(HttpUser):
    wait_time = constant_throughput(PROFILE.pace)

    def on_start(self) -> None:
        self.client.verify = VERIFY
        self.client_id = f"load-{uuid.uuid4().hex[:12]}"
        runner = self.environment.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        self.account = ACCOUNTS[(next(_accounts) * PROCESSES + worker) % len(ACCOUNTS)]
        self.etags: dict[str, str] = {}
        self.access_token = ""
        self.refresh_token = ""
        self.expires_at = 0.0
        self.sign_in()

    # the journeys

    def browse(self) -> None:
        filters: dict[str, str | int] = random.choice(
            [{}, {"sort": "price"}, {"sort": "-name"}, {"min_price": 500, "max_price": 5000}]
        )
        page = _json(self.call("GET", "/api/catalog/items", params={"limit": 20, **filters}))
        if not page or not page.get("items"):
            return
        if page.get("next_cursor") and random.random() < 0.3:
            self.call("GET", "/api/catalog/items", params={"limit": 20, **filters, "cursor": page["next_cursor"]})
        for item in random.sample(page["items"], k=min(2, len(page["items"]))):
            self.read_item(item["id"])

    def read_item(self, item_id: str) -> None:
        """A conditional GET when this client has seen the item: 304 and no body when it has not changed."""
        seen = self.etags.get(item_id)
        headers = {"If-None-Match": seen} if seen else {}
        answer = self.call(
            "GET", f"/api/catalog/items/{item_id}", name="/api/catalog/items/{item_id}", headers=headers,
            expect=(200, 304),
        )  # fmt: skip
        if etag := answer.headers.get("ETag"):
            self.etags[item_id] = etag

    def account_journey(self) -> None:
        self.call("GET", "/api/auth/me", signed_in=True)
        if random.random() < 0.2:
            self.call("GET", "/api/auth/sessions", signed_in=True)

    def pay(self) -> None:
        """A payment, its key sent again on a timeout or a 5xx (the service answers the first outcome), then its
        status read."""
        key = uuid.uuid4().hex
        body = {"amount": random.randint(100, 20_000), "currency": "eur", "customer": "cus_load",
                "description": "load test"}  # fmt: skip
        for attempt in range(PAY_ATTEMPTS):
            answer = self.call(
                "POST", "/api/billing/payments", json=body, headers={"Idempotency-Key": key}, signed_in=True,
                expect=(201, 202, 402), timeout=10,
            )  # fmt: skip
            if answer.status_code not in RETRIED_STATUSES:
                break
            gevent.sleep(_retry_after(answer.headers.get("Retry-After"), attempt))
        payment = _json(answer)
        if answer.status_code in (201, 202) and payment and "id" in payment:
            self.call("GET", f"/api/billing/payments/{payment['id']}", name="/api/billing/payments/{payment_id}",
                      signed_in=True)  # fmt: skip

    # signing in and staying signed in

    def sign_in(self) -> None:
        credentials = {"email": self.account.email, "password": PASSWORD}
        answer = self.call("POST", "/api/auth/login", json=credentials, expect=(200, 202))
        tokens = _json(answer)
        if answer.status_code == 202 and tokens and self.account.totp_secret:
            code = pyotp.TOTP(self.account.totp_secret).now()
            answer = self.call("POST", "/api/auth/login/totp", json={"challenge": tokens["challenge"], "code": code})
            tokens = _json(answer)
        self._keep(tokens if answer.status_code == 200 else None)

    def fresh_token(self) -> str:
        if time.monotonic() >= self.expires_at - REFRESH_BEFORE_SECONDS:
            answer = self.call("POST", "/api/auth/refresh", json={"refresh_token": self.refresh_token},
                               expect=(200, 401)) if self.refresh_token else None  # fmt: skip
            if answer is not None and answer.status_code == 200:
                self._keep(_json(answer))
            else:
                self.sign_in()
        return self.access_token

    def _keep(self, tokens: dict[str, Any] | None) -> None:
        if tokens and "access_token" in tokens:
            self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
            self.expires_at = time.monotonic() + tokens["expires_in"]
        else:  # sign in again at the next journey that needs it
            self.access_token, self.refresh_token, self.expires_at = "", "", 0.0

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        signed_in: bool = False,
        **arguments: Any,
    ) -> Any:
        sent = {"X-Client-Id": self.client_id, **(headers or {})}
        if signed_in:
            sent["Authorization"] = f"Bearer {self.fresh_token()}"
        with self.client.request(
            method, path, name=name or path, headers=sent, catch_response=True, **arguments
        ) as answer:
            if answer.status_code == 503:
                answer.failure(SHED)
            elif answer.status_code == 429:
                answer.failure(RATE_LIMITED)
            elif answer.status_code not in expect:
                answer.failure(f"unexpected {answer.status_code}: {answer.text[:200]}")
            else:
                answer.success()
        return answer


def _json(answer: Any) -> Any:
    """The answer's JSON body, or None when it has none (a refusal from a proxy, a cut connection)."""
    try:
        return answer.json()
    except ValueError:
        return None


def _retry_after(header: str | None, attempt: int) -> float:
    """The service's Retry-After when it gave one (capped), else exponential backoff with jitter."""
    if header and header.isdigit():
        return min(float(header), 5.0)
    return random.uniform(0, min(2.0, 0.1 * 2**attempt))


def _journey(run: Any) -> Any:
    def started(user: Client) -> None:
        global _journeys_started
        _journeys_started += 1
        run(user)

    started.__name__ = run.__name__
    return started


Client.tasks = {  # type: ignore[assignment]
    _journey(Client.browse): PROFILE.journeys.browse,
    _journey(Client.account_journey): PROFILE.journeys.account,
    _journey(Client.pay): PROFILE.journeys.pay,
}


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _write_journeys(environment: Any, **_: Any) -> None:
    """Each generator process's count of journeys started; `python -m load` adds them up."""
    STATS_DIR.mkdir(parents=True, exist_ok=True)
    (STATS_DIR / f"journeys-{os.getpid()}.json").write_text(json.dumps({"started": _journeys_started}))

"""`python -m app users create ... --totp/--no-totp`: load-test accounts made as an operator makes them, with TOTP on
(its secret printed) or off, whatever state an earlier run left them in."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pyotp
from pydantic import SecretStr

from app.bootstrap import open_services
from app.settings import Settings
from app.src.api.auth.models import LoginRequest, TokenPair, TotpChallenge, TotpLoginRequest
from tests.support.processes import clean_environment

PASSWORD = "an operator's passphrase"
KEYS = "k1:" + "A" * 43  # the same key ring for the command and the service: the TOTP secret is sealed with it


def create(database_uri: str, email: str, cwd: Path, *flags: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "app", "users", "create", email, "--display-name", "Load", *flags],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=60, cwd=cwd,
        env=clean_environment(PROFILE="test", DB_URI=database_uri, TOKEN_KEYS=KEYS),
    )  # fmt: skip
    return done.stdout


async def test_an_account_is_brought_to_totp_on_with_a_printed_secret_then_off(
    settings: Settings, database_uri: str, tmp_path: Path
) -> None:
    email = f"load-{uuid.uuid4().hex[:8]}@example.org"
    configured = settings.model_copy(update={"token_keys": SecretStr(KEYS)})
    line = create(database_uri, email, tmp_path, "--totp")
    secret = line.strip().split("\t")[-1].removeprefix("totp ")
    async with open_services(configured) as services:
        challenge = await services.auth.login(LoginRequest(email=email, password=PASSWORD), "load")
        assert isinstance(challenge, TotpChallenge)
        answer = TotpLoginRequest(challenge=challenge.challenge, code=pyotp.TOTP(secret).now())
        assert isinstance(await services.auth.login_with_totp(answer, "load"), TokenPair)

    assert create(database_uri, email, tmp_path, "--no-totp").strip().endswith("\ttotp off")
    async with open_services(configured) as services:
        assert isinstance(await services.auth.login(LoginRequest(email=email, password=PASSWORD), "load"), TokenPair)

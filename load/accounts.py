"""The load test's accounts, made as an operator makes them (`python -m app users create`, which brings an address
already taken to the state asked for): verified, one password, TOTP on for a share of them with the secrets
printed. Run against the local topology's database by `python -m load`, or by hand against staging's:

    DB_URI=... TOKEN_KEYS=... PROFILE=stage LOAD_PASSWORD=... python -m load accounts --count 200 --out accounts.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

DOMAIN = "load.example.org"


@dataclass(frozen=True)
class Account:
    email: str
    totp_secret: str | None


def emails(count: int) -> list[str]:
    return [f"load-{index:05d}@{DOMAIN}" for index in range(count)]


def make_accounts(
    count: int, totp_share: float, password: str, environment: Mapping[str, str], cwd: Path
) -> list[Account]:
    """`count` accounts, the first `totp_share` of them with TOTP on (a new secret each)."""
    addresses = emails(count)
    with_totp = round(count * totp_share)
    made: list[Account] = []
    for batch, flag in ((addresses[:with_totp], "--totp"), (addresses[with_totp:], "--no-totp")):
        if not batch:
            continue
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "app", "users", "create", *batch, "--display-name", "Load test", flag],
            input=password + "\n", text=True, capture_output=True, timeout=600, cwd=cwd, env=dict(environment),
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"python -m app users create failed: {done.stderr.strip()}")
        made += [_account(line) for line in done.stdout.splitlines() if line.strip()]
    return made


def _account(line: str) -> Account:
    """`email<TAB>user N<TAB>verified<TAB>totp SECRET|off`"""
    fields = line.split("\t")
    second_factor = fields[-1].removeprefix("totp ")
    return Account(fields[0], None if second_factor == "off" else second_factor)


def write_accounts(accounts: list[Account], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(account) for account in accounts], indent=1))
    path.chmod(0o600)  # TOTP secrets


def read_accounts(path: Path) -> list[Account]:
    return [Account(**entry) for entry in json.loads(path.read_text())]

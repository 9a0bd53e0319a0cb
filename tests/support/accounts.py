"""Verified accounts made as an operator makes them (`python -m app users create`), for tests that speak HTTP to a
served process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import clean_environment

PASSWORD = "an end-to-end passphrase"


def make_account(database_uri: str, email: str, cwd: Path) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "app", "users", "create", email, "--display-name", "E2E"], input=PASSWORD + "\n",
        text=True, check=True, capture_output=True, timeout=60, cwd=cwd,
        env=clean_environment(PROFILE="test", DB_URI=database_uri),
    )  # fmt: skip

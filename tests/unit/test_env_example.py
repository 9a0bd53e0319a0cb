"""`.env.example` lists every setting (compose.yaml and a new deployment start from it)."""

from __future__ import annotations

import re

from app.settings import Settings
from tests.support.postgres import repository_root


def test_every_setting_is_listed_in_the_env_example() -> None:
    listed = set(re.findall(r"^# ([A-Z0-9_]+)=", (repository_root() / ".env.example").read_text(), re.MULTILINE))
    assert listed == {name.upper() for name in Settings.model_fields}

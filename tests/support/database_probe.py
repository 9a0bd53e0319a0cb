"""Run by tests/integration/test_database_choice.py in a pytest of its own: it writes down the database URI the
suite's fixture chose, so the outer test can tell which one it was."""

from __future__ import annotations

import os
from pathlib import Path


def test_report_the_chosen_database(postgres_admin_uri: str) -> None:
    Path(os.environ["DATABASE_PROBE_OUTPUT"]).write_text(postgres_admin_uri)

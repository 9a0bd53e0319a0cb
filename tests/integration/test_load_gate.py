"""`python -m load` refuses what it cannot run before sending anything: a profile with a bad field, and a HOST that
does not answer (fast, with a clear message, not a hang); both exit 2, distinct from a breach (1) and an invalid
run (3). Its full runs are `make load` (the smoke profile runs in .ci/run)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from load.__main__ import main
from tests.support.processes import free_port


def test_an_unreachable_host_fails_fast_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    status = main(["smoke", "--host", f"https://127.0.0.1:{free_port()}", "--reports", str(tmp_path)])
    assert status == 2
    assert time.monotonic() - started < 30
    error = capsys.readouterr().err
    assert "cannot load the target" in error
    assert "is not ready after 10 s" in error
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing sent


def test_a_bad_profile_is_refused_naming_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text("name: bad\ndescription: x\nstages: [{duration: 5, users: 1, spawn_rate: 1}]\npace: -1\n"
                        "slos: {}\n")  # fmt: skip
    assert main([str(profile), "--reports", str(tmp_path / "reports")]) == 2
    assert "pace" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()

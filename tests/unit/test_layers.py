"""The layers are enforced, not described: `lint-imports` (the contracts in pyproject.toml) keeps a copy of the tree
as it is and breaks on each kind of import the design forbids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import repository_root

ROOT = repository_root()
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def copy_of_the_tree(destination: Path) -> Path:
    for package in ("app", "simulators"):
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", destination)
    return destination


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy ahead of the installed project; wide lines, so that no contract name is wrapped.
    environment = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "400"}
    return subprocess.run(  # noqa: S603 - the venv's own lint-imports on a copy of our tree
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, env=environment, capture_output=True, text=True
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken_contract"),
    [
        ("app/src/api/auth/service.py", "import quart", "Services, repositories and adapters know nothing of Quart"),
        ("app/src/api/auth/service.py", "from app.database import Database", "app/src never imports the modules"),
        ("app/src/api/auth/service.py", "import app.http.problems", "HTTP above the composition root"),
        ("app/routes/auth/__init__.py", "import app.src.database.auth_repository", "Routes reach the data"),
        ("simulators/engine/clock.py", "import app.settings", "The service never imports the simulators"),
        ("app/settings.py", "import simulators.client", "The service never imports the simulators"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, broken_contract: str) -> None:
    tree = copy_of_the_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{line}\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [entry for entry in result.stdout.splitlines() if entry.endswith(" BROKEN")]
    assert any(entry.startswith(broken_contract) for entry in broken), result.stdout


def test_the_worker_command_loads_no_web_framework() -> None:
    """A worker image needs no Quart: `python -m app worker` and the scheduler import none of it."""
    check = (
        "import sys, app.__main__, app.scheduler; "
        "web = sorted({'quart', 'quart_schema', 'werkzeug', 'hypercorn'} & set(sys.modules)); "
        "sys.exit(', '.join(web) or None)"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    assert result.returncode == 0, result.stderr

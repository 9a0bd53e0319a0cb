"""docs/requirements.md and the `requirement` markers must agree, both ways."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.support.postgres import repository_root

ROOT = repository_root()
SECTION = re.compile(r"^## (NFR-\d+)\b")
LISTED_TEST = re.compile(r"^- `(tests/[\w/]+\.py)::(test_\w+)`")


def listed_tests(document: str) -> set[tuple[str, str, str]]:
    listed: set[tuple[str, str, str]] = set()
    requirement = None
    for line in document.splitlines():
        if section := SECTION.match(line):
            requirement = section.group(1)
        elif (entry := LISTED_TEST.match(line)) and requirement:
            listed.add((requirement, entry.group(1), entry.group(2)))
    return listed


def _requirements_of(decorators: list[ast.expr]) -> Iterator[str]:
    for decorator in decorators:
        for node in ast.walk(decorator):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "requirement"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                yield str(node.args[0].value)


def marked_tests(root: Path) -> set[tuple[str, str, str]]:
    marked: set[tuple[str, str, str]] = set()
    for path in sorted((root / "tests").rglob("test_*.py")):
        module = ast.parse(path.read_text())
        relative = path.relative_to(root).as_posix()
        module_marks = [
            node.value
            for node in module.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
        ]
        for node in module.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                for requirement in _requirements_of([*node.decorator_list, *module_marks]):
                    marked.add((requirement, relative, node.name))
    return marked


def test_every_listed_test_exists_and_carries_its_marker() -> None:
    listed = listed_tests((ROOT / "docs" / "requirements.md").read_text())
    assert listed, "docs/requirements.md lists no tests"
    assert listed - marked_tests(ROOT) == set()


def test_every_marked_test_is_listed_under_its_requirement() -> None:
    listed = listed_tests((ROOT / "docs" / "requirements.md").read_text())
    assert marked_tests(ROOT) - listed == set()


def test_the_checker_sees_a_missing_marker_and_an_unlisted_test(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sample.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.requirement('NFR-2')\n@pytest.mark.parametrize('x', [1])\n"
        "async def test_marked(x): ...\n\n"
        "def test_unmarked(): ...\n"
    )
    assert marked_tests(tmp_path) == {("NFR-2", "tests/test_sample.py", "test_marked")}
    document = "## NFR-2 Timeouts\n- `tests/test_sample.py::test_unmarked`\n"
    assert listed_tests(document) == {("NFR-2", "tests/test_sample.py", "test_unmarked")}

"""The shape of the repository: what may import what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devstack import tools

pytestmark = pytest.mark.unit

REPO = tools.repo_root()
#: code that ships or that developers run: the job image, the scripts, the benchmarks
NOT_TESTS = ("image", "scripts", "bench")


def imports_of_tests(path: Path) -> list[str]:
    """``file:line`` of every import of the ``tests`` package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "tests" or name.startswith("tests.") for name in names):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (REPO / folder).rglob("*.py") if ".tools" not in p.parts)


@pytest.mark.parametrize("folder", NOT_TESTS)
def test_no_module_outside_tests_imports_from_tests(folder: str) -> None:
    assert [hit for path in python_files(folder) for hit in imports_of_tests(path)] == []


@pytest.mark.parametrize("folder", NOT_TESTS)
def test_the_scan_reads_python_files(folder: str) -> None:
    assert python_files(folder)


def test_the_scan_finds_an_import_of_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "module.py"
    module.write_text("import os\nfrom tests.support import cli\nimport tests.chart.helm_render as render\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["REPO"]), "REPO", tmp_path)
    assert imports_of_tests(module) == ["module.py:2", "module.py:3"]


def repeated_names(paths: list[Path]) -> dict[str, list[str]]:
    """File name -> the files of that name, for names held by more than one (``__init__.py``
    and ``conftest.py`` aside)."""
    by_name: dict[str, list[str]] = {}
    for path in paths:
        if path.name not in ("__init__.py", "conftest.py"):
            by_name.setdefault(path.name, []).append(path.relative_to(REPO).as_posix())
    return {name: files for name, files in by_name.items() if len(files) > 1}


def test_no_file_name_is_repeated_across_the_test_folders() -> None:
    """Name a test module by what it tests, so ``test_prune.py`` means one thing."""
    assert repeated_names(python_files("tests")) == {}


def test_the_repeat_check_finds_a_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("unit", "operator"):
        (tmp_path / folder).mkdir()
        for name in ("test_prune.py", "__init__.py"):
            (tmp_path / folder / name).write_text("")
    monkeypatch.setattr(__import__(__name__, fromlist=["REPO"]), "REPO", tmp_path)
    assert repeated_names(sorted(tmp_path.rglob("*.py"))) == {"test_prune.py": ["operator/test_prune.py", "unit/test_prune.py"]}

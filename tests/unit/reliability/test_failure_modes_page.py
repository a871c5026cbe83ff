"""docs/failure-modes.md is generated from the same table the reliability tests run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devstack import tools
from tests.reliability import failure_modes_page
from tests.reliability.cases import CASES, Case

pytestmark = pytest.mark.unit

REPO = tools.repo_root()
PAGE = failure_modes_page.PAGE


def test_page_is_current() -> None:
    result = subprocess.run([sys.executable, "-m", "tests.reliability.failure_modes_page", "--check"],
                            cwd=REPO, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_stale_page_fails_the_check_naming_the_command(tmp_path, monkeypatch, capsys) -> None:
    stale = tmp_path / "failure-modes.md"
    stale.write_text(failure_modes_page.render() + "an edit by hand\n")
    monkeypatch.setattr(failure_modes_page, "PAGE", stale)
    assert failure_modes_page.main(["--check"]) == 1
    assert f"is stale: run {failure_modes_page.COMMAND}" in capsys.readouterr().err


def _section(case: Case) -> str:
    return PAGE.read_text().split(f"### {case.id}\n", 1)[1].split("\n### ", 1)[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_page_shows_the_message_of_the_case(case: Case) -> None:
    assert case.message in _section(case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_page_shows_the_exit_code_of_the_case(case: Case) -> None:
    assert f"**Exit code:** {case.exit_code}" in _section(case)


def test_exit_codes_on_the_page_are_documented_ones() -> None:
    from agent_bom_backup.errors import ExitCode

    assert {c.exit_code for c in CASES} <= {int(code) for code in ExitCode}

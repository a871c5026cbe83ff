"""docs/failure-modes.md is generated from the same table the reliability tests run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.reliability.cases import CASES, Case
from devstack import tools

REPO = tools.repo_root()
PAGE = REPO / "docs" / "failure-modes.md"
GENERATOR = REPO / "scripts" / "gen_failure_modes.py"


def test_page_is_current() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_page_lists_the_case_with_its_message_and_exit_code(case: Case) -> None:
    text = PAGE.read_text()
    section = text.split(f"### {case.id}\n", 1)[1].split("\n### ", 1)[0]
    assert (case.message in section, f"**Exit code:** {case.exit_code}" in section) == (True, True)


def test_exit_codes_on_the_page_are_documented_ones() -> None:
    from agent_bom_backup.errors import ExitCode

    assert {c.exit_code for c in CASES} <= {int(code) for code in ExitCode}

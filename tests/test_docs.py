"""Generated documentation stays current."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import tools

pytestmark = pytest.mark.unit


def test_configuration_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(tools.repo_root() / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_configuration_reference_lists_every_exit_code() -> None:
    from agent_bom_backup.errors import ExitCode

    text = (tools.repo_root() / "docs" / "configuration.md").read_text()
    assert all(f"| {int(code)} | {code.name.lower()} |" in text for code in ExitCode)


DOCS = [tools.repo_root() / "README.md", *sorted((tools.repo_root() / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_relative_links_resolve(doc: Path) -> None:
    targets = [m.group(1).split("#")[0] for m in LINK.finditer(doc.read_text())]
    local = [t for t in targets if t and not re.match(r"^[a-z]+:", t)]
    assert [t for t in local if not (doc.parent / t).exists()] == []

"""Generated documentation stays current."""

import subprocess
import sys

from devstack import tools


def test_configuration_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(tools.repo_root() / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_configuration_reference_lists_every_exit_code() -> None:
    from agent_bom_backup.errors import ExitCode

    text = (tools.repo_root() / "docs" / "configuration.md").read_text()
    assert all(f"| {int(code)} | {code.name.lower()} |" in text for code in ExitCode)

"""The benchmark scripts print their usage: ``--help`` is the first thing a reader of
docs/performance.md runs (a ``%`` in a help text once made argparse raise instead)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devstack import tools

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("script", ["run.py", "encryption.py"])
def test_help_prints_usage(script: str) -> None:
    result = subprocess.run([sys.executable, str(tools.repo_root() / "bench" / script), "--help"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout.startswith("usage:"), result.stderr) == (0, True, "")

"""The benchmark scripts print their usage: ``--help`` is the first thing a reader of
docs/performance.md runs (a ``%`` in a help text once made argparse raise instead)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devstack import tools

pytestmark = pytest.mark.unit

SCRIPTS = ("run.py", "encryption.py")


def test_help_prints_usage() -> None:
    # both at once: each spends its second importing the benchmark's modules
    processes = {script: subprocess.Popen([sys.executable, str(tools.repo_root() / "bench" / script), "--help"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for script in SCRIPTS}
    results = {script: (process.wait(timeout=60), process.stdout.read().startswith("usage:"), process.stderr.read())
               for script, process in processes.items()}
    assert results == {script: (0, True, "") for script in SCRIPTS}

"""scripts/bootstrap-chart-tools.sh: installs readme-generator (npm) and, on request, checkov."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.chart.helm_render import REPO

pytestmark = pytest.mark.unit

SCRIPT = REPO / "scripts" / "bootstrap-chart-tools.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


class TestBootstrapChartTools:
    def test_is_shellcheck_clean(self):
        shellcheck = shutil.which("shellcheck")
        if shellcheck is None:
            raise RuntimeError("shellcheck not found: run `scripts/bootstrap.sh shellcheck`")
        proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout

    def test_help_exits_zero_with_usage(self):
        proc = _run("--help")
        assert (proc.returncode, proc.stdout.startswith("Usage: scripts/bootstrap-chart-tools.sh")) == (0, True)

    @pytest.mark.parametrize("argument", ["--bogus", "checkov"])
    def test_unknown_argument_fails(self, argument):
        proc = _run(argument)
        assert (proc.returncode, "unknown argument" in proc.stderr) == (1, True)

    def test_uses_strict_mode(self):
        assert "set -euo pipefail" in SCRIPT.read_text()

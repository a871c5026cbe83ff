"""scripts/bootstrap-chart-tools.sh: installs readme-generator (npm) and, on request, checkov."""

from __future__ import annotations

import subprocess

import pytest

from tests.chart.helm_render import REPO

pytestmark = pytest.mark.unit

SCRIPT = REPO / "scripts" / "bootstrap-chart-tools.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


class TestBootstrapChartTools:
    def test_help_exits_zero(self):
        assert _run("--help").returncode == 0

    def test_help_prints_the_usage(self):
        assert _run("--help").stdout.startswith("Usage: scripts/bootstrap-chart-tools.sh")

    @pytest.mark.parametrize("argument", ["--bogus", "checkov"])
    def test_unknown_argument_exits_1(self, argument):
        assert _run(argument).returncode == 1

    @pytest.mark.parametrize("argument", ["--bogus", "checkov"])
    def test_unknown_argument_is_named(self, argument):
        assert f"unknown argument: {argument}" in _run(argument).stderr

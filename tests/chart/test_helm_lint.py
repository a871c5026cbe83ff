"""`helm lint --strict` for the chart defaults and every values file (the chart's ci/ values
and examples/), Helm 3 and 4: the helm half of `ct lint --config ci/ct.yaml` (its yamale and
yamllint half is tests/unit/chart/test_chart_lint.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack import tools
from tests.chart.helm_render import CHART_DIR, HELM_MAJORS
from tests.unit.chart.test_chart_lint import LINT_IDS, LINT_VALUES


def _helm_lint(helm_major: int, *values: Path) -> subprocess.CompletedProcess[str]:
    args = [str(tools.helm_binary(helm_major)), "lint", "--strict", str(CHART_DIR)]
    for path in values:
        args += ["--values", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
class TestHelmLintStrict:
    def test_chart_defaults(self, helm_major):
        proc = _helm_lint(helm_major)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    @pytest.mark.parametrize("values", LINT_VALUES, ids=LINT_IDS)
    def test_values_file(self, values, helm_major):
        proc = _helm_lint(helm_major, values)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_lint_fails_on_values_the_schema_rejects(self, helm_major, tmp_path):
        """Guards the checks above. (`helm lint` logs a template's `fail` at INFO level
        instead of failing, so the `fail` checks are covered by test_bad_values.py.)"""
        bad = tmp_path / "bad-values.yaml"
        bad.write_text("controlPlane:\n  backup:\n    schedule: 3\n")
        assert _helm_lint(helm_major, bad).returncode != 0

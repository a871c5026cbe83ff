"""The chart README's parameter table is generated from the `## @param` comments in
values.yaml by @bitnami/readme-generator-for-helm (scripts/bootstrap-chart-tools.sh installs
it into .tools/npm); the committed table must not be stale."""

from __future__ import annotations

import difflib
import shutil
import subprocess

import pytest

from tests.chart.helm_render import CHART_DIR
from devstack.tools import tools_dir

pytestmark = pytest.mark.unit

README = CHART_DIR / "README.md"


def _readme_generator():
    path = tools_dir() / "npm" / "node_modules" / ".bin" / "readme-generator"
    if not path.is_file():
        raise RuntimeError(f"{path} not found: run `scripts/bootstrap-chart-tools.sh`")
    return path


def _regenerate(tmp_path, values=CHART_DIR / "values.yaml"):
    copy = tmp_path / "README.md"
    shutil.copyfile(README, copy)
    proc = subprocess.run(
        [str(_readme_generator()), "--values", str(values), "--readme", str(copy)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return proc, copy


class TestReadmeTable:
    def test_generator_accepts_the_values_metadata(self, tmp_path):
        proc, _ = _regenerate(tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_table_is_not_stale(self, tmp_path):
        _, regenerated = _regenerate(tmp_path)
        diff = list(difflib.unified_diff(
            README.read_text().splitlines(), regenerated.read_text().splitlines(),
            "README.md (committed)", "README.md (regenerated)", lineterm="",
        ))
        assert diff == [], (
            "the values table is stale: run .tools/npm/node_modules/.bin/readme-generator "
            "-v deploy/helm/agent-bom/values.yaml -r deploy/helm/agent-bom/README.md\n" + "\n".join(diff[:40])
        )

    def test_generator_rejects_an_undocumented_value(self, tmp_path):
        """Guards the checks above: a value without `## @param` fails the generator."""
        values = tmp_path / "values.yaml"
        values.write_text((CHART_DIR / "values.yaml").read_text() + "undocumentedValue: 1\n")
        proc, _ = _regenerate(tmp_path, values)
        assert proc.returncode != 0

    @pytest.mark.parametrize(
        "row",
        ["| `controlPlane.backup.enabled`", "| `controlPlane.backup.destination.encryption.kmsKeyId`"],
        ids=["enabled", "kms-key"],
    )
    def test_table_lists_runbook_values(self, row):
        assert row in README.read_text()

"""checkov scans the rendered chart offline: no failed check, and every skipped check is
justified by a `checkov:skip=` comment next to the resource in the template.

checkov is a large install kept in its own venv (.tools/checkov, from
`scripts/bootstrap-chart-tools.sh --with-checkov`): when it is not installed these tests
skip with a loud message instead of failing."""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm_render import CHART_DIR, REPO, RUNBOOK_VALUES, backup_values, own_role, render_chart
from devstack.tools import tools_dir

#: check id -> why it does not apply. Each is repeated as a `checkov:skip=` comment in the
#: template next to the resource it concerns (see test_skip_is_justified_in_the_template).
SKIPPED_CHECKS = {
    "CKV_K8S_35": "the CLI contract is environment variables (docs/interface.md); the values come "
                  "from secretKeyRef, never from values, and boto3/libpq read them natively",
    "CKV_K8S_43": "the default image is tagged with the chart's appVersion; pin image.digest in "
                  "production (test_digest_pinned_image_passes_image_checks proves it passes then)",
    "CKV_K8S_15": "IfNotPresent is right for an immutable tag or a digest; with a digest the check passes",
    "CKV_K8S_8": "the helm test pod runs one preflight and exits: a liveness probe has nothing to probe",
    "CKV_K8S_9": "the helm test pod runs one preflight and exits: a readiness probe has nothing to gate",
}

VALUES_SETS = {
    "runbook-minimal": RUNBOOK_VALUES,
    "all-features": yaml.safe_load((CHART_DIR / "ci" / "all-features-values.yaml").read_text()),
    "s3-compatible": yaml.safe_load((CHART_DIR / "ci" / "s3-compatible-values.yaml").read_text()),
    "every-pod-tag-only": backup_values(
        helmTest={"enabled": True},
        restoreDrill={"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
                      **own_role("agent-bom-restore-drill")},
        restore={"enabled": True, "target": {"existingSecret": "restore-target"}, "persistence": {"existingClaim": "reports"},
                 **own_role("agent-bom-restore")},
        retentionDays=30, retention=own_role("agent-bom-prune"),
        networkPolicy={"enabled": True, "database": {"cidrs": ["10.0.0.0/16"]}},
    ),
    "minio-example": yaml.safe_load((REPO / "examples" / "minio.yaml").read_text()),
    "eks-example": yaml.safe_load((REPO / "examples" / "eks-irsa-kms.yaml").read_text()),
}
DIGEST_VALUES = backup_values(image={"digest": "sha256:" + "0" * 64}, helmTest={"enabled": True}, retentionDays=30,
                              retention=own_role("agent-bom-prune"),
                              restore={"enabled": True, "target": {"existingSecret": "restore-target"},
                                       **own_role("agent-bom-restore")})


def _checkov() -> Path:
    path = tools_dir() / "checkov" / "bin" / "checkov"
    if not path.is_file():
        pytest.skip(
            f"CHECKOV NOT INSTALLED at {path}: the checkov scan did NOT run. "
            "Install it with `scripts/bootstrap-chart-tools.sh --with-checkov`."
        )
    return path


@functools.lru_cache(maxsize=1)
def _scan() -> dict[str, dict[str, Any]]:
    """One checkov run over every rendered values set (no skips); results by set name."""
    sets = {**VALUES_SETS, "digest": DIGEST_VALUES}
    with tempfile.TemporaryDirectory(prefix="agent-bom-checkov-") as tmp:
        for name, values in sets.items():
            Path(tmp, f"{name}.yaml").write_text(yaml.safe_dump_all(render_chart(values)))
        proc = subprocess.run(
            [str(_checkov()), "--directory", tmp, "--framework", "kubernetes", "--output", "json",
             "--compact", "--skip-download"],
            capture_output=True, text=True, timeout=300, check=False,
        )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    by_set: dict[str, dict[str, Any]] = {n: {"failed": [], "passed": 0} for n in sets}
    for rep in report if isinstance(report, list) else [report]:
        results = rep.get("results", {})
        for check in results.get("failed_checks", []):
            by_set[Path(check["file_path"]).stem]["failed"].append((check["check_id"], check["resource"]))
        for check in results.get("passed_checks", []):
            by_set[Path(check["file_path"]).stem]["passed"] += 1
    return by_set


class TestCheckov:
    @pytest.mark.parametrize("name", sorted(VALUES_SETS))
    def test_no_failed_checks_beyond_the_justified_skips(self, name):
        assert [f for f in _scan()[name]["failed"] if f[0] not in SKIPPED_CHECKS] == []

    @pytest.mark.parametrize("name", sorted(VALUES_SETS))
    def test_checks_did_run(self, name):
        assert _scan()[name]["passed"] > 20

    def test_digest_pinned_image_passes_image_checks(self):
        assert [f for f in _scan()["digest"]["failed"] if f[0] in {"CKV_K8S_43", "CKV_K8S_15"}] == []

    def test_every_skip_is_still_needed(self):
        """No stale skip: each skipped check does fail somewhere without it."""
        failed = {check for result in _scan().values() for check, _ in result["failed"]}
        assert failed == set(SKIPPED_CHECKS)

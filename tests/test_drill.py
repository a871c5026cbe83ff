"""The README's first command: the drill on the embedded default prints a verified report."""

import json
import subprocess
from pathlib import Path

from devstack import tools


def test_drill_restores_every_tenant_and_prints_the_verified_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(tools.repo_root() / "scripts" / "drill.sh"), "--output", str(tmp_path), "--tenants", "3", "--rows", "50"],
        capture_output=True, text=True, timeout=600,
    )
    report = json.loads((tmp_path / "restore-report.json").read_text())
    assert (result.returncode, "status:            VERIFIED" in result.stdout, report["status"]) == (0, True, "verified"), (
        result.stdout + result.stderr
    )

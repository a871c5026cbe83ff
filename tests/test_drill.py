"""The README's first command: the drill on the embedded default prints a verified report;
``--s3 rgw-https`` runs the same drill against Ceph RGW over https."""

import json
import subprocess
from pathlib import Path

import pytest

from devstack import tools

pytestmark = pytest.mark.slow

#: the encryption each server confirms (RGW 16 has no SSE-S3: the drill asks it for SSE-KMS)
CONFIRMED = {"moto": "encryption confirmed by the store: AES256",
             "rgw-https": "encryption confirmed by the store: aws:kms (KMS key"}


@pytest.mark.parametrize("s3", sorted(CONFIRMED))
def test_drill_restores_every_tenant_and_prints_the_verified_report(tmp_path: Path, s3: str) -> None:
    result = subprocess.run(
        [str(tools.repo_root() / "scripts" / "drill.sh"), "--output", str(tmp_path), "--tenants", "3", "--rows", "50",
         "--s3", s3],
        capture_output=True, text=True, timeout=600,
    )
    report = json.loads((tmp_path / "restore-report.json").read_text())
    assert (result.returncode, "status:            VERIFIED" in result.stdout, report["status"],
            CONFIRMED[s3] in result.stdout) == (0, True, "verified", True), result.stdout + result.stderr

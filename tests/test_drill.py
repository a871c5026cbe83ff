"""The README's first command: the drill on the embedded default prints a verified report;
``--s3 rgw-https`` runs the same drill against Ceph RGW over https."""

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from devstack import tools

pytestmark = pytest.mark.slow

#: the encryption each server confirms (RGW 16 has no SSE-S3: the drill asks it for SSE-KMS)
CONFIRMED = {"moto": "encryption confirmed by the store: AES256",
             "rgw-https": "encryption confirmed by the store: aws:kms (KMS key"}


@dataclass(frozen=True)
class Drill:
    run: subprocess.CompletedProcess[str]
    report: dict[str, Any]

    def __str__(self) -> str:
        return self.run.stdout + self.run.stderr


@pytest.fixture(scope="module", params=sorted(CONFIRMED))
def drill(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Drill]:
    output = tmp_path_factory.mktemp(f"drill-{request.param}")
    run = subprocess.run(
        [str(tools.repo_root() / "scripts" / "drill.sh"), "--output", str(output), "--tenants", "3", "--rows", "50",
         "--s3", request.param],
        capture_output=True, text=True, timeout=600,
    )
    report_path = output / "restore-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return request.param, Drill(run, report)


def test_drill_succeeds(drill: tuple[str, Drill]) -> None:
    _, result = drill
    assert result.run.returncode == 0, str(result)


def test_drill_prints_the_verified_report(drill: tuple[str, Drill]) -> None:
    _, result = drill
    assert "status:            VERIFIED" in result.run.stdout, str(result)


def test_drill_writes_the_verified_json_report(drill: tuple[str, Drill]) -> None:
    _, result = drill
    assert result.report.get("status") == "verified", str(result)


def test_drill_shows_the_encryption_the_store_confirmed(drill: tuple[str, Drill]) -> None:
    s3, result = drill
    assert CONFIRMED[s3] in result.run.stdout, str(result)


def test_report_names_the_target_server_without_its_password(drill: tuple[str, Drill]) -> None:
    """Redaction removes the password, never the whole URL: the incident record must say
    which database was restored."""
    _, result = drill
    (line,) = [line for line in result.run.stdout.splitlines() if line.startswith("target:")]
    assert line.split()[1].startswith("postgresql://postgres@127.0.0.1:"), line

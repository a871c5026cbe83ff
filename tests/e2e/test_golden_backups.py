"""Backups outlive releases: every golden backup in ``tests/golden/`` (one per manifest
format version, written by the release that introduced it with
``scripts/make_golden_backup.py``) restores with the code under test, into a fresh
cluster without the backup's roles, and verifies against its own manifest; the plan of a
backup older than format 3 says it records no database-level state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.pgcluster import PgClusterPool
from devstack.s3server import MotoServer
from tests.support import cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
BACKUPS = sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def _manifest(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.manifest.json")
    return json.loads(path.read_text())


def test_a_golden_backup_exists_for_every_manifest_format_up_to_the_current_one() -> None:
    from agent_bom_backup.manifest import FORMAT_VERSION

    versions = {_manifest(d)["format_version"] for d in BACKUPS}
    assert versions == set(range(1, FORMAT_VERSION + 1))


@pytest.mark.parametrize("directory", BACKUPS, ids=[p.name for p in BACKUPS])
def test_golden_backup_restores_and_verifies(directory: Path, pg_cluster_factory: PgClusterPool, s3: MotoServer,
                                             bucket: str, shared_tmp_path: Path) -> None:
    manifest = _manifest(directory)
    client = s3.client()
    prefix = manifest["dump"]["key"].rsplit("/", 1)[0]
    for path in directory.iterdir():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.create_database("agent_bom")
    report_path = shared_tmp_path / "report.json"

    run = cli.restore(cli.job_env(s3.endpoint_url, bucket), f"s3://{bucket}/{manifest['dump']['key']}",
                      cluster.superuser_url("agent_bom"), "--create-missing-roles", "--report", str(report_path))

    assert run.returncode == 0, str(run)
    report = json.loads(report_path.read_text())
    assert report["status"] == "verified"
    lacks = "does not record the database's own state"
    assert any(lacks in step for step in report["plan"]["steps"]) == (manifest["format_version"] < 3)
    restored = dict(cluster.run_sql("SELECT team_id, count(*) FROM audit_log GROUP BY 1 ORDER BY 1", "agent_bom"))
    expected = next(t["tenants"] for t in manifest["tables"] if t["name"] == "audit_log")
    assert restored == expected

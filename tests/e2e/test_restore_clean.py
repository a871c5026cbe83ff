"""``--clean --confirm-target`` replaces a non-empty database after a safety backup of it;
``--dry-run`` runs every check, prints the plan and touches nothing."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import helpers
from devstack import tools
from tests.support import cli
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec

OTHER_DATA = SeedSpec(tenants=("team-other",), audit_rows_per_tenant=7)


@dataclass(frozen=True)
class Cleaned:
    target: str
    run: cli.Run
    report: dict[str, Any]
    safety_files: list[Path]


@pytest.fixture(scope="module")
def cleaned(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> Cleaned:
    target = cli.seeded_database(pg15, "replace_me", OTHER_DATA).name
    safety_dir = tmp_root / cli.unique_name("safety")
    report = tmp_root / cli.unique_name("report")
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15.superuser_url(target),
                          "--clean", "--confirm-target", target, "--safety-backup-dir", str(safety_dir),
                          "--report", str(report))
    assert run.returncode == 0, str(run)
    return Cleaned(target, run, json.loads(report.read_text()), sorted(safety_dir.glob("*")))


def test_clean_writes_one_safety_backup_named_for_the_target(cleaned: Cleaned) -> None:
    assert [p.name.startswith(f"{cleaned.target}-before-") for p in cleaned.safety_files] == [True]


def test_clean_reports_the_safety_backup(cleaned: Cleaned) -> None:
    assert cleaned.report["safety_backup"] == str(cleaned.safety_files[0])


def test_safety_backup_is_a_readable_archive_of_the_replaced_data(cleaned: Cleaned) -> None:
    listing = subprocess.run([str(tools.pg_bin_dir(15) / "pg_restore"), "--list", str(cleaned.safety_files[0])],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    assert "TABLE DATA public audit_log" in listing


def test_safety_backup_holds_the_replaced_rows(cleaned: Cleaned) -> None:
    data = subprocess.run([str(tools.pg_bin_dir(15) / "pg_restore"), "--data-only", "--table=audit_log", "-f", "-",
                           str(cleaned.safety_files[0])], capture_output=True, text=True, check=True, timeout=60).stdout
    assert data.count("\tteam-other\t") == OTHER_DATA.audit_rows_per_tenant


def test_clean_replaces_the_target_with_the_backup(pg15: PgCluster, cleaned: Cleaned, source15: cli.Database) -> None:
    assert helpers.table_counts(pg15, cleaned.target) == helpers.table_counts(pg15, source15.name)


def test_clean_restore_brings_back_the_tenant_distribution(pg15: PgCluster, cleaned: Cleaned,
                                                           source15: cli.Database) -> None:
    assert helpers.tenant_counts(pg15, cleaned.target, "audit_log") == source15.audit_rows


def test_clean_restore_is_verified(cleaned: Cleaned) -> None:
    assert (cleaned.report["status"], cleaned.report["verification"]["ok"]) == ("verified", True)


# ------------------------------------------------------------------ dry run
@dataclass(frozen=True)
class DryRun:
    run: cli.Run
    before: dict[str, Any]
    after: dict[str, Any]
    safety_dir: Path


@pytest.fixture(scope="module")
def dry_run(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> DryRun:
    target = cli.seeded_database(pg15, "keep_me", OTHER_DATA).name
    safety_dir = tmp_root / cli.unique_name("safety")
    before = helpers.database_state(pg15, target)
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15.superuser_url(target),
                          "--clean", "--confirm-target", target, "--safety-backup-dir", str(safety_dir), "--dry-run")
    return DryRun(run, before, helpers.database_state(pg15, target), safety_dir)


def test_dry_run_succeeds(dry_run: DryRun) -> None:
    assert (dry_run.run.returncode, dry_run.run.errors) == (0, []), str(dry_run.run)


def test_dry_run_prints_the_plan(dry_run: DryRun) -> None:
    plan = dry_run.run.stdout.split("plan:\n", 1)[1]
    assert [step in plan for step in ("download ", "take a safety pg_dump", "drop every user schema", "pg_restore 15",
                                      "verify 5 tables, 4 tenants")] == [True] * 5


def test_dry_run_reports_its_status(dry_run: DryRun) -> None:
    assert "status:            DRY-RUN" in dry_run.run.stdout.splitlines()


def test_dry_run_touches_nothing(dry_run: DryRun) -> None:
    assert (dry_run.after, dry_run.safety_dir.exists()) == (dry_run.before, False)

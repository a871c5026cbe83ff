"""``--clean --confirm-target`` replaces a non-empty database after a safety backup of it;
``--dry-run`` runs every check, prints the plan and touches nothing."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import helpers
from devstack import tools
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
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
    target = postgres.seeded_database(pg15, "replace_me", OTHER_DATA).name
    safety_dir = tmp_root / postgres.unique_name("safety")
    report = tmp_root / postgres.unique_name("report")
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15.superuser_url(target),
                          "--clean", "--confirm-target", target, "--safety-backup-dir", str(safety_dir),
                          "--report", str(report))
    assert run.returncode == 0, str(run)
    return Cleaned(target, run, json.loads(report.read_text()), sorted(safety_dir.glob("*")))


def test_clean_writes_one_safety_backup_named_for_the_target(cleaned: Cleaned) -> None:
    assert [p.name.startswith(f"{cleaned.target}-before-") for p in cleaned.safety_files] == [True]


def test_clean_reports_the_safety_backup(cleaned: Cleaned) -> None:
    assert cleaned.report["safety_backup"] == str(cleaned.safety_files[0])


def test_safety_backup_is_private_to_its_owner(cleaned: Cleaned) -> None:
    """A full copy of the replaced database: 0600 in a 0700 directory."""
    modes = (cleaned.safety_files[0].stat().st_mode & 0o777, cleaned.safety_files[0].parent.stat().st_mode & 0o777)
    assert modes == (0o600, 0o700)


def test_safety_backup_is_a_readable_archive_of_the_replaced_data(cleaned: Cleaned) -> None:
    listing = subprocess.run([str(tools.pg_bin_dir(15) / "pg_restore"), "--list", str(cleaned.safety_files[0])],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    assert "TABLE DATA public audit_log" in listing


def test_safety_backup_holds_the_replaced_rows(cleaned: Cleaned) -> None:
    data = subprocess.run([str(tools.pg_bin_dir(15) / "pg_restore"), "--data-only", "--table=audit_log", "-f", "-",
                           str(cleaned.safety_files[0])], capture_output=True, text=True, check=True, timeout=60).stdout
    assert data.count("\tteam-other\t") == OTHER_DATA.audit_rows_per_tenant


def test_clean_replaces_the_target_with_the_backup(pg15: PgCluster, cleaned: Cleaned, source15: postgres.Database) -> None:
    assert helpers.table_counts(pg15, cleaned.target) == helpers.table_counts(pg15, source15.name)


def test_clean_restore_brings_back_the_tenant_distribution(pg15: PgCluster, cleaned: Cleaned,
                                                           source15: postgres.Database) -> None:
    assert helpers.tenant_counts(pg15, cleaned.target, "audit_log") == source15.audit_rows


def test_clean_restore_is_verified(cleaned: Cleaned) -> None:
    assert (cleaned.report["status"], cleaned.report["verification"]["ok"]) == ("verified", True)


# ------------------------------------------------------------------ dry run
@pytest.fixture(scope="module")
def dry_run(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> helpers.CleanRestore:
    target = postgres.seeded_database(pg15, "keep_me", OTHER_DATA).name
    return helpers.clean_restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15, target,
                                 tmp_root / postgres.unique_name("safety"), "--dry-run")


def test_dry_run_succeeds(dry_run: helpers.CleanRestore) -> None:
    assert (dry_run.run.returncode, dry_run.run.errors) == (0, []), str(dry_run.run)


def test_dry_run_prints_the_plan(dry_run: helpers.CleanRestore) -> None:
    plan = dry_run.run.stdout.split("plan:\n", 1)[1]
    assert [step in plan for step in ("download ", "take a safety pg_dump", "drop every user schema", "pg_restore 15",
                                      "verify 5 tables, 4 tenants")] == [True] * 5


def test_dry_run_reports_its_status(dry_run: helpers.CleanRestore) -> None:
    assert "status:            DRY-RUN" in dry_run.run.stdout.splitlines()


def test_dry_run_touches_nothing(dry_run: helpers.CleanRestore) -> None:
    assert dry_run.after == dry_run.before
    assert not dry_run.safety_dir.exists()


# ------------------------------------------------------------------ a failure after the wipe
@dataclass(frozen=True)
class FailedAfterWipe:
    target: str
    run: cli.Run
    report: dict[str, Any]
    recovery: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def failed_after_wipe(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> FailedAfterWipe:
    """A backup whose manifest claims one audit row more than its dump holds (the checksum
    matches: only the restored database can show it), restored with --clean over a
    database with other data: the wipe and pg_restore happen, verification fails. Then
    the go-back command the error names is run as printed."""
    with buckets.fresh_bucket(s3, "abb-after") as bucket:
        helpers.copy_with_one_audit_row_too_many(s3, backup15, bucket)
        target = postgres.seeded_database(pg15, "wiped", OTHER_DATA).name
        report = tmp_root / postgres.unique_name("report")
        run = cli.restore(cli.job_env(s3.endpoint_url, bucket), backup15.uri_in(bucket), pg15.superuser_url(target),
                          "--clean", "--confirm-target", target, "--safety-backup-dir",
                          str(tmp_root / postgres.unique_name("safety")), "--report", str(report))
    recorded = json.loads(report.read_text())
    command = recorded["recovery"].split("restore the safety dump: ", 1)[1].rsplit(" (password", 1)[0]
    recovery = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120,
                              env={**cli.base_env(), "PGPASSWORD": pg15.superuser_password})
    return FailedAfterWipe(target, run, recorded, recovery)


def test_failure_after_the_wipe_exits_with_the_changed_code(failed_after_wipe: FailedAfterWipe) -> None:
    assert failed_after_wipe.run.returncode == 11, str(failed_after_wipe.run)


def test_failure_after_the_wipe_names_its_cause(failed_after_wipe: FailedAfterWipe) -> None:
    assert failed_after_wipe.run.error_message.startswith(
        "failed after changing the target: verification failed: restored database differs from the backup: "
        "table public.audit_log: expected 401 rows, found 400"), str(failed_after_wipe.run)


def test_failure_after_the_wipe_is_never_called_refused(failed_after_wipe: FailedAfterWipe) -> None:
    assert (failed_after_wipe.report["status"], failed_after_wipe.report["target_changed"]) == (
        "failed-after-changes", True)


def test_failure_after_the_wipe_names_the_safety_dump(failed_after_wipe: FailedAfterWipe) -> None:
    safety = failed_after_wipe.report["safety_backup"]
    assert safety and safety in failed_after_wipe.run.error_message and safety in failed_after_wipe.report["recovery"]


def test_failure_after_the_wipe_lists_what_changed(failed_after_wipe: FailedAfterWipe) -> None:
    assert failed_after_wipe.report["changes"] == [
        f"dropped every user schema of {failed_after_wipe.target} (8 objects)", "restored the backup with pg_restore"]


def test_the_named_go_back_command_brings_the_old_data_back(pg15: PgCluster, failed_after_wipe: FailedAfterWipe) -> None:
    assert failed_after_wipe.recovery.returncode == 0, failed_after_wipe.recovery.stderr
    assert helpers.tenant_counts(pg15, failed_after_wipe.target, "audit_log") == {"team-other": 7}

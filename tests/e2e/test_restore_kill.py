"""A report that survives a kill: SIGKILL the restore past the wipe (while pg_restore
runs) and the report on disk says the target changed, what changed, where the safety
backup is and how to go back.

pg_restore is wrapped (a --pg-bin-dir of wrapper scripts): the wrapper of the run that
writes into the target (``--dbname``) records its pid and waits, so the kill lands at a
known point after the wipe without any timing."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.e2e import helpers
from tests.support import cli
from tests.support import postgres

WRAPPED = ("pg_dump", "pg_dumpall", "pg_restore", "psql")


def pausing_bin_dir(directory: Path, marker: Path) -> Path:
    """Wrappers of the PostgreSQL 15 clients; pg_restore into a database (``--dbname``)
    writes its pid to ``marker`` and sleeps instead of restoring."""
    directory.mkdir()
    real = tools.pg_bin_dir(15)
    for name in WRAPPED:
        pause = ""
        if name == "pg_restore":
            pause = (f'case "$*" in *--dbname=*) echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; '
                     'exec sleep 600;; esac\n')
        wrapper = directory / name
        wrapper.write_text(f"#!/bin/sh\n{pause}exec {real / name} \"$@\"\n")
        wrapper.chmod(stat.S_IRWXU)
    return directory


def wait_for(path: Path, job: cli.Job, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert job.running(), str(job.wait())
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@dataclass(frozen=True)
class Killed:
    target: str
    report: dict[str, Any]
    tables_after: dict[str, int]


@pytest.fixture(scope="module")
def killed(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> Killed:
    work = tmp_root / postgres.unique_name("kill")
    work.mkdir()
    marker = work / "pg_restore.pid"
    bin_dir = pausing_bin_dir(work / "bin", marker)
    target = postgres.seeded_database(pg15, "killed", postgres.SMALL_SEED).name
    report = work / "report.json"
    env = cli.job_env(s3.endpoint_url, backup15.bucket, AGENT_BOM_BACKUP_PG_BIN_DIRS=str(bin_dir),
                      AGENT_BOM_BACKUP_PG_BIN_DIRS_ONLY="true",
                      AGENT_BOM_RESTORE_POSTGRES_URL=pg15.superuser_url(target))
    job = cli.Job([cli.executable(), "restore", backup15.uri, "--clean", "--confirm-target", target,
                   "--safety-backup-dir", str(work / "safety"), "--report", str(report)], env)
    try:
        wait_for(marker, job)
        job.kill()
    finally:
        job.kill()
        if marker.exists():
            os.kill(int(marker.read_text()), signal.SIGKILL)
    return Killed(target, json.loads(report.read_text()), helpers.table_counts(pg15, target))


def test_the_kill_landed_past_the_wipe(killed: Killed) -> None:
    assert killed.tables_after == {}


def test_the_report_says_the_target_changed(killed: Killed) -> None:
    assert (killed.report["status"], killed.report["target_changed"]) == ("running", True)


def test_the_report_lists_the_wipe(killed: Killed) -> None:
    assert any(c.startswith(f"dropped every user schema of {killed.target}") for c in killed.report["changes"])


def test_the_report_says_connect_is_still_revoked_and_how_to_undo_it(killed: Killed) -> None:
    assert any(c.startswith(f"revoked CONNECT on database {killed.target} from PUBLIC")
               and f"GRANT CONNECT ON DATABASE {killed.target} TO PUBLIC" in c for c in killed.report["changes"])


def test_the_report_says_pg_restore_was_under_way(killed: Killed) -> None:
    assert killed.report["changes"][-1] == "pg_restore started: the backup is (partially) restored"


def test_the_report_names_a_safety_backup_that_exists(killed: Killed) -> None:
    assert Path(killed.report["safety_backup"]).is_file()


def test_the_report_says_how_to_go_back(killed: Killed) -> None:
    assert killed.report["safety_backup"] in killed.report["recovery"]

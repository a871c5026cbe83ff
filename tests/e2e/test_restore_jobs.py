"""``pg_restore --jobs`` defaults to the CPUs the restore may use (its CPU affinity, fewer
under a cgroup CPU quota: resources.cpu_count; the quota arithmetic is in
tests/unit/test_resources.py), and ``--jobs`` sets it. Read from the plan a dry run records."""

from __future__ import annotations

import json
from pathlib import Path

from agent_bom_backup.resources import cpu_count
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer

from tests.support import cli
from tests.support import postgres


def planned_jobs(s3: MotoServer, pg15: PgCluster, backup: cli.Backup, report: Path, *args: str,
                 cpus: str | None = None) -> int:
    target = postgres.new_database(pg15, "jobs")
    argv = [str(cli.executable()), "restore", backup.uri, "--dry-run", "--report", str(report), *args]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    env = {**cli.job_env(s3.endpoint_url, backup.bucket), "AGENT_BOM_RESTORE_POSTGRES_URL": pg15.superuser_url(target)}
    run = cli.run(argv, env)
    assert run.returncode == 0, str(run)
    return int(json.loads(report.read_text())["plan"]["jobs"])


def test_jobs_default_to_the_cpus_the_restore_may_use(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup,
                                                      tmp_path: Path) -> None:
    # the test runs in the restore's cgroup and with its affinity: the same count
    assert planned_jobs(s3, pg15, backup15, tmp_path / "report.json") == cpu_count()


def test_one_cpu_gives_one_job(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_path: Path) -> None:
    assert planned_jobs(s3, pg15, backup15, tmp_path / "report.json", cpus="0") == 1


def test_jobs_as_set(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_path: Path) -> None:
    assert planned_jobs(s3, pg15, backup15, tmp_path / "report.json", "--jobs", "3") == 3

"""The in-cluster restore, end to end: the rendered restore CronJob instantiated as
`kubectl create job --from=cronjob/...` would (its jobTemplate as a Job), overridden with the
real `kubectl set env --local` exactly as the README documents, and its pod run inside the job
image as the kubelet would, against a real PostgreSQL server and a real S3 endpoint (moto).

It restores a backup into an empty database with every tenant back and the JSON report on the
claim; it refuses a non-empty target without --clean, and the live database without an
approval (exit 8), changing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_bom_backup.errors import ExitCode
from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.podrun import container_run
from devstack.s3server import MotoServer
from devstack.seed import tenant_distribution
from tests.chart.helm_render import RESTORE_TEMPLATE, backup_values, render_chart
from devstack.jobimage import ContainerEngine
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

pytestmark = pytest.mark.image

TARGET_SECRET = "agent-bom-restore-target"
CLAIM = "agent-bom-restore-files"
S3_SECRET = "agent-bom-backup-s3"
#: the restore's own read key: the chart refuses the backup's
RESTORE_S3_SECRET = "agent-bom-restore-s3"


@dataclass(frozen=True)
class Result:
    run: subprocess.CompletedProcess[str]
    pod_name: str
    files: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.files / f"{self.pod_name}.report.json").read_text())


@pytest.fixture(scope="module")
def source(pg15: PgCluster) -> postgres.Database:
    return postgres.seeded_database(pg15, "inclsrc")


@pytest.fixture(scope="module")
def restore_bucket(s3: MotoServer) -> Iterator[str]:
    with buckets.fresh_bucket(s3, "abb-incluster") as name:
        yield name


@pytest.fixture(scope="module")
def backup(s3: MotoServer, restore_bucket: str, source: postgres.Database) -> cli.Backup:
    return cli.take_backup(s3, restore_bucket, source.url, AGENT_BOM_BACKUP_SSE="AES256")


def restore_cronjob(s3: MotoServer, bucket: str, image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    values = backup_values(
        image={"repository": repository, "tag": tag, "pullPolicy": "Never"},
        destination={
            "bucket": bucket, "bucketRegion": "us-east-1", "endpointUrl": s3.endpoint_url, "pathStyle": True,
            "encryption": {"enabled": True, "mode": "AES256", "kmsKeyId": ""},
            "staticCredentials": {"enabled": True, "existingSecret": S3_SECRET},
        },
        restore={"enabled": True, "target": {"existingSecret": TARGET_SECRET}, "persistence": {"existingClaim": CLAIM},
                 "staticCredentialsSecret": RESTORE_S3_SECRET},
    )
    (cronjob,) = render_chart(values, show_only=[RESTORE_TEMPLATE])
    return cronjob


def instantiate(cronjob: dict[str, Any], job_name: str, *set_env: str) -> dict[str, Any]:
    """`kubectl create job --from=cronjob/NAME JOB --dry-run=client -o yaml | kubectl set env --local -f - ...`:
    the Job kubectl builds from the CronJob, then the real kubectl's env overrides."""
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name, "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                     "labels": cronjob["spec"]["jobTemplate"]["metadata"]["labels"]},
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    }
    if not set_env:
        return job
    result = subprocess.run(
        [str(tools.kubectl_binary()), "set", "env", "--local", "-f", "-", "-o", "json", *set_env],
        input=json.dumps(job), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_job(engine: ContainerEngine, job: dict[str, Any], pg: PgCluster, source: postgres.Database, target_db: str,
            tmp_path: Path) -> Result:
    files = tmp_path / "claim"
    files.mkdir(mode=0o777, parents=True)
    files.chmod(0o777)  # the pod's user (10001) writes here, as on a real volume with fsGroup
    pod_name = f"{job['metadata']['name']}-{uuid.uuid4().hex[:5]}"
    secrets = {
        TARGET_SECRET: {"AGENT_BOM_RESTORE_POSTGRES_URL": pg.superuser_url(target_db)},
        RESTORE_S3_SECRET: {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    }
    run = container_run(job["spec"]["template"]["spec"], engine.command, secrets=secrets, claims={CLAIM: files},
                        pod_name=pod_name, namespace="agent-bom")
    try:
        completed = subprocess.run(run.argv, env={**os.environ, **engine.env, **run.env},
                                   capture_output=True, text=True, timeout=600)
    finally:
        run.cleanup()
    return Result(completed, pod_name, files)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("in-cluster-restore")


@pytest.fixture(scope="module")
def restored(s3: MotoServer, restore_bucket: str, backup: cli.Backup, source: postgres.Database, pg15: PgCluster,
             job_image: str, container_engine: ContainerEngine, module_tmp: Path) -> tuple[Result, str]:
    """The documented instantiation: the backup, the approval and the operator set with kubectl set env."""
    target = postgres.new_database(pg15, "inclrestored")
    job = instantiate(restore_cronjob(s3, restore_bucket, job_image), "restore-inc-1234",
                      f"BACKUP_URI={backup.uri}", "AGENT_BOM_RESTORE_APPROVAL=INC-1234", "AGENT_BOM_RESTORE_OPERATOR=alice")
    return run_job(container_engine, job, pg15, source, target, module_tmp / "restored"), target


class TestRestoresInTheCluster:
    def test_the_job_succeeds(self, restored):
        result, _ = restored
        assert result.run.returncode == 0, result.run.stderr

    def test_every_tenant_is_back(self, restored, pg15: PgCluster, source: postgres.Database):
        _, target = restored
        with postgres.connect(pg15, target) as conn:
            assert tenant_distribution(conn) == source.audit_rows

    def test_the_human_report_is_the_pod_log(self, restored, backup: cli.Backup):
        result, _ = restored
        assert ["status:            VERIFIED", f"backup URI:        {backup.uri}", "operator:          alice"] == [
            line for line in result.run.stdout.splitlines() if line.startswith(("status:", "backup URI:", "operator:"))]

    def test_the_json_report_is_on_the_claim_named_for_the_pod(self, restored):
        result, _ = restored
        report = result.report
        assert (report["status"], report["approval"], report["operator"]) == ("verified", "INC-1234", "alice")

    def test_the_override_reached_the_cli_argument(self, restored, backup: cli.Backup):
        """$(BACKUP_URI) in args, expanded from the env kubectl set env changed."""
        result, _ = restored
        assert result.report["backup_uri"] == backup.uri


@pytest.fixture(scope="module")
def refused_non_empty(s3: MotoServer, restore_bucket: str, backup: cli.Backup, source: postgres.Database, pg15: PgCluster,
                      job_image: str, container_engine: ContainerEngine, module_tmp: Path):
    """The CronJob as rendered (BACKUP_URI=latest, no --clean) against a database that holds data."""
    target = postgres.seeded_database(pg15, "inclbusy")
    with postgres.connect(pg15, target.name) as conn:
        before = (postgres.user_relations(conn), tenant_distribution(conn))
    job = instantiate(restore_cronjob(s3, restore_bucket, job_image), "restore-busy")
    result = run_job(container_engine, job, pg15, source, target.name, module_tmp / "busy")
    with postgres.connect(pg15, target.name) as conn:
        after = (postgres.user_relations(conn), tenant_distribution(conn))
    return result, before, after


class TestRefusesANonEmptyTargetWithoutClean:
    def test_exit_code_is_refused(self, refused_non_empty):
        result, _, _ = refused_non_empty
        assert result.run.returncode == ExitCode.REFUSED, result.run.stderr

    def test_error_line_says_why_and_what_to_do(self, refused_non_empty):
        result, _, _ = refused_non_empty
        assert "is not empty" in result.run.stderr and "--clean" in result.run.stderr

    def test_target_is_unchanged(self, refused_non_empty):
        _, before, after = refused_non_empty
        assert after == before

    def test_report_records_the_refusal(self, refused_non_empty):
        result, _, _ = refused_non_empty
        assert (result.report["status"], result.report["exit_code"]) == ("refused", int(ExitCode.REFUSED))


def test_refuses_the_live_database_without_an_approval(s3: MotoServer, restore_bucket: str, backup: cli.Backup,
                                                        source: postgres.Database, pg15: PgCluster, job_image: str,
                                                        container_engine: ContainerEngine, tmp_path: Path):
    """--clean over the database the backup was taken from still needs --approval, as with the script,
    although the pod never gets the source's credential: the manifest's server identity names it."""
    job = instantiate(restore_cronjob(s3, restore_bucket, job_image), "restore-live",
                      "AGENT_BOM_RESTORE_CLEAN=true", f"AGENT_BOM_RESTORE_CONFIRM_TARGET={source.name}")
    with postgres.connect(pg15, source.name) as conn:
        before = tenant_distribution(conn)
    result = run_job(container_engine, job, pg15, source, source.name, tmp_path)
    with postgres.connect(pg15, source.name) as conn:
        after = tenant_distribution(conn)
    assert result.run.returncode == ExitCode.REFUSED, result.run.stderr
    assert "live source database" in result.run.stderr
    assert after == before

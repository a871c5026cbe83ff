"""The rendered CronJob pod, run inside the job image as the kubelet would, backs up
PostgreSQL servers of three majors at the chart's default compression (``auto``: zstd:1
from the image's pg_dump 17 (trixie) and 18 (Debian forky)); each backup
restores through the runbook's restore script running the same image, with matching
counts. A host without a zstd-capable pg_restore refuses a zstd backup before it touches
the target."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.chart.helm_render import CRONJOB_TEMPLATE, backup_values, pod_spec, render_chart
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.jobimage import ContainerEngine
from devstack import tools
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.podrun import container_run
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec, seed, tenant_distribution

pytestmark = pytest.mark.image

BUCKET_PREFIX = "agent-bom/postgres"
CLI = str(tools.repo_root() / ".tools" / "venv" / "bin" / "agent-bom-backup")
RESTORE_SCRIPT = tools.repo_root() / "deploy" / "ops" / "restore-postgres-backup.sh"
REGION = "us-east-1"


def rendered_pod(s3: MotoServer, bucket: str, image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    values = backup_values(
        image={"repository": repository, "tag": tag, "pullPolicy": "Never"},
        database={"existingSecret": "agent-bom-postgres"},
        destination={
            "bucket": bucket, "bucketRegion": REGION, "endpointUrl": s3.endpoint_url, "pathStyle": True,
            "encryption": {"enabled": True, "mode": "AES256", "kmsKeyId": ""},
            "staticCredentials": {"enabled": True, "existingSecret": "agent-bom-backup-s3"},
        },
    )
    (cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
    return pod_spec(cronjob)


def seeded_database(pg: PgCluster) -> tuple[str, dict[str, int]]:
    name = f"img_{uuid.uuid4().hex[:8]}"
    pg.run_sql(f"CREATE DATABASE {name}")
    with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
        return name, seed(conn, SeedSpec(audit_rows_per_tenant=30))


def run_pod(engine: ContainerEngine, spec: dict[str, Any], pg: PgCluster, database: str,
            env_overrides: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    secrets = {
        "agent-bom-postgres": {"AGENT_BOM_POSTGRES_URL": pg.superuser_url(database)},
        "agent-bom-backup-s3": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    }
    run = container_run(spec, engine.command, secrets=secrets, env_overrides=env_overrides)
    try:
        return subprocess.run(run.argv, env={**os.environ, **engine.env, **run.env},
                              capture_output=True, text=True, timeout=300)
    finally:
        run.cleanup()


def distribution(pg: PgCluster, database: str) -> dict[str, int]:
    with psycopg.connect(pg.conninfo(database)) as conn:
        return tenant_distribution(conn)


@pytest.fixture(scope="module")
def servers(pg_cluster_factory: PgClusterPool) -> dict[int, PgCluster]:
    return {major: pg_cluster_factory(major) for major in (15, 17, 18)}


@dataclass(frozen=True)
class PodBackup:
    pg: PgCluster
    bucket: str
    seeded: dict[str, int]
    uri: str
    manifest: dict[str, Any]


@pytest.fixture(scope="module")
def pod_backup(servers: dict[int, PgCluster], s3: MotoServer, job_image: str,
               container_engine: ContainerEngine) -> Iterator[Callable[[int], PodBackup]]:
    """``pod_backup(major)``: the rendered pod's backup of a seeded database on the server
    of ``major`` (taken once per module), each in its own bucket: a second backup of the same
    second in one bucket and prefix would take the next second's id."""
    taken: dict[int, PodBackup] = {}

    with contextlib.ExitStack() as opened:
        def take(major: int) -> PodBackup:
            if major not in taken:
                pg = servers[major]
                bucket = opened.enter_context(buckets.fresh_bucket(s3, f"abb-pod{major}"))
                database, seeded = seeded_database(pg)
                result = run_pod(container_engine, rendered_pod(s3, bucket, job_image), pg, database)
                assert result.returncode == 0, result.stderr
                uri = result.stdout.strip().splitlines()[-1]
                key = uri.split(f"s3://{bucket}/", 1)[1].replace(".dump", ".manifest.json")
                manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
                taken[major] = PodBackup(pg, bucket, seeded, uri, manifest)
            return taken[major]

        yield take


@dataclass(frozen=True)
class ImageRestore:
    run: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    distribution: dict[str, int]


def restore_with_image(engine: ContainerEngine, image: str, s3: MotoServer, backup: PodBackup,
                       workdir: Path) -> ImageRestore:
    """The runbook's restore script with ``AGENT_BOM_BACKUP_IMAGE``: the CLI and pg_restore
    of the job image restore into a fresh database (password in PGPASSWORD, not the URL)."""
    target = f"restored_{uuid.uuid4().hex[:8]}"
    backup.pg.run_sql(f"CREATE DATABASE {target}")
    env = {
        **os.environ,
        "AGENT_BOM_BACKUP_IMAGE": image,
        "AGENT_BOM_BACKUP_CONTAINER_ENGINE": str(engine.executable(workdir)),
        "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url,
        "PGPASSWORD": backup.pg.superuser_password,
    }
    run = subprocess.run([str(RESTORE_SCRIPT), backup.uri, backup.pg.url(target), REGION, "--report", "report.json"],
                         env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    report = json.loads((workdir / "report.json").read_text()) if run.returncode == 0 else {}
    return ImageRestore(run, report, distribution(backup.pg, target) if run.returncode == 0 else {})


@pytest.fixture(scope="module")
def image_restore(pod_backup: Callable[[int], PodBackup], s3: MotoServer, job_image: str,
                  container_engine: ContainerEngine, tmp_root: Path) -> Callable[[int], ImageRestore]:
    done: dict[int, ImageRestore] = {}

    def restore(major: int) -> ImageRestore:
        if major not in done:
            workdir = tmp_root / postgres.unique_name("image-restore")
            workdir.mkdir()
            done[major] = restore_with_image(container_engine, job_image, s3, pod_backup(major), workdir)
        return done[major]

    return restore


#: server major -> (pg_dump major the image chooses, what the chart's ``auto`` resolves to)
CASES = {15: (17, "zstd:1"), 17: (17, "zstd:1"), 18: (18, "zstd:1")}
MAJORS = pytest.mark.parametrize("major", list(CASES), ids=[f"pg{m}" for m in CASES])


@MAJORS
def test_rendered_pod_uses_the_lowest_pg_dump_at_least_the_server_major(
    pod_backup: Callable[[int], PodBackup], major: int
) -> None:
    assert pod_backup(major).manifest["client"]["pg_dump_major"] == CASES[major][0]


@MAJORS
def test_rendered_pod_compresses_with_zstd_where_its_pg_dump_has_it(
    pod_backup: Callable[[int], PodBackup], major: int
) -> None:
    assert pod_backup(major).manifest["client"]["compression"] == CASES[major][1]


@MAJORS
def test_rendered_pod_backup_restores_with_the_image(image_restore: Callable[[int], ImageRestore], major: int) -> None:
    restore = image_restore(major)
    assert (restore.run.returncode, restore.report.get("status")) == (0, "verified"), restore.run.stderr


@MAJORS
def test_image_restore_brings_back_every_tenant(pod_backup: Callable[[int], PodBackup],
                                                image_restore: Callable[[int], ImageRestore], major: int) -> None:
    assert image_restore(major).distribution == pod_backup(major).seeded


@MAJORS
def test_image_restore_uses_the_image_pg_restore_of_the_archive_major(
    image_restore: Callable[[int], ImageRestore], major: int
) -> None:
    version = image_restore(major).report.get("pg_restore_version", "")
    assert version.split(".")[0] == str(CASES[major][0]), version


@pytest.fixture(scope="module")
def host_refusal(pod_backup: Callable[[int], PodBackup], s3: MotoServer,
                 tmp_root: Path) -> helpers.CleanRestore:
    """The image's zstd backup restored by this host's CLI, whose pg_restore 15 (Debian)
    and 18 (wheel) lack zstd, with --clean over a non-empty database."""
    backup = pod_backup(15)
    target, _ = seeded_database(backup.pg)
    return helpers.clean_restore(cli.job_env(s3.endpoint_url, backup.bucket), backup.uri, backup.pg, target,
                                 tmp_root / postgres.unique_name("safety"))


def test_zstd_backup_on_a_host_without_a_zstd_pg_restore_is_a_preflight_refusal(host_refusal: helpers.CleanRestore) -> None:
    assert (host_refusal.run.returncode, host_refusal.run.error_message.startswith(
        "no pg_restore here can read a zstd-compressed archive")) == (4, True), str(host_refusal.run)


def test_zstd_refusal_points_at_the_job_image(host_refusal: helpers.CleanRestore) -> None:
    assert "AGENT_BOM_BACKUP_IMAGE" in host_refusal.run.error_message, str(host_refusal.run)


def test_zstd_refusal_leaves_the_target_as_it_was(host_refusal: helpers.CleanRestore) -> None:
    assert host_refusal.after == host_refusal.before
    assert not host_refusal.safety_dir.exists()


def test_server_newer_than_every_client_in_the_image_fails_clearly(
    servers: dict[int, PgCluster], s3: MotoServer, bucket: str, job_image: str, container_engine: ContainerEngine,
) -> None:
    database, _ = seeded_database(servers[18])
    only_17 = {"AGENT_BOM_BACKUP_PG_BIN_DIRS": "/usr/lib/postgresql/17/bin", "AGENT_BOM_BACKUP_PG_BIN_DIRS_ONLY": "true"}
    result = run_pod(container_engine, rendered_pod(s3, bucket, job_image), servers[18], database, only_17)
    assert result.returncode == 4 and "no pg_dump can dump a PostgreSQL 18 server" in result.stderr


def test_rendered_pod_writes_nothing_outside_its_scratch_mount(
    servers: dict[int, PgCluster], s3: MotoServer, bucket: str, job_image: str, container_engine: ContainerEngine,
) -> None:
    # --read-only root: any write outside the emptyDir would fail the backup
    spec = rendered_pod(s3, bucket, job_image)
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    database, _ = seeded_database(servers[15])
    assert run_pod(container_engine, spec, servers[15], database).returncode == 0


def test_rendered_pod_never_runs_as_root(s3: MotoServer, bucket: str, job_image: str,
                                         container_engine: ContainerEngine) -> None:
    spec = rendered_pod(s3, bucket, job_image)
    spec["containers"][0]["command"] = ["id"]
    spec["containers"][0]["args"] = ["-u"]
    run = container_run(spec, container_engine.command, secrets={
        "agent-bom-postgres": {"AGENT_BOM_POSTGRES_URL": "postgresql://x@127.0.0.1/x"},
        "agent-bom-backup-s3": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    })
    try:
        out = subprocess.run(run.argv, env={**os.environ, **container_engine.env, **run.env},
                             capture_output=True, text=True, timeout=120)
    finally:
        run.cleanup()
    assert out.stdout.strip() == "10001"

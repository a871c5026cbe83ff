"""Fixtures of the operator-tooling tests (list, verify, check, prune, smoke script, docs).

One real backup is taken per session through ``agent-bom-backup backup`` (with
``--metrics-file``) from a seeded PostgreSQL 15 database into a session bucket; tests
plant copies of it under chosen names in their own fresh bucket (see helpers.Planter).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.operator import planting as helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer


@dataclass(frozen=True)
class SessionBackup:
    """The session's real backup and where it lives."""

    source: postgres.Database
    bucket: str
    uri: str
    real: helpers.RealBackup
    metrics_file: Path
    stdout: str


@pytest.fixture(scope="session")
def op_source(pg15: PgCluster) -> postgres.Database:
    return postgres.seeded_database(pg15, "ops_src")


@pytest.fixture(scope="session")
def op_backup(s3: MotoServer, op_source: postgres.Database, tmp_root: Path) -> Iterator[SessionBackup]:
    metrics = tmp_root / "ops-metrics" / "agent_bom_backup.prom"
    with buckets.fresh_bucket(s3, "abb-ops") as bucket:
        backup = cli.take_backup(s3, bucket, op_source.url, "--metrics-file", str(metrics))
        client = s3.client()
        dump_key, roles_key, _ = backup.keys
        real = helpers.RealBackup(
            dump=buckets.get_object(client, bucket, dump_key),
            roles=buckets.get_object(client, bucket, roles_key),
            manifest=backup.manifest,
        )
        yield SessionBackup(op_source, bucket, backup.uri, real, metrics, backup.run.stdout)


@pytest.fixture
def planter(s3: MotoServer, bucket: str, op_backup: SessionBackup) -> helpers.Planter:
    """Plants copies of the session backup into this test's fresh bucket."""
    return helpers.Planter(s3, bucket, op_backup.real)


@pytest.fixture
def cli_env(s3: MotoServer, bucket: str) -> dict[str, str]:
    """CLI environment pointing at this test's fresh bucket."""
    return cli.job_env(s3.endpoint_url, bucket)

"""Fixtures of the reliability suite: seeded sources (a small one and a large one whose
dump streams long enough to strike mid-upload), one good backup to tamper with, and a
moto server that enforces IAM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import harness
from tests.reliability.iam import IamWorld, start_iam_world
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer


@pytest.fixture(scope="session")
def reliability_bucket(s3: MotoServer) -> Iterator[str]:
    with buckets.fresh_bucket(s3, "abb-rel") as name:
        yield name


@pytest.fixture(scope="session")
def small_source(pg15: PgCluster) -> postgres.Database:
    return postgres.seeded_database(pg15, "rel_small", harness.SMALL_SEED)


@pytest.fixture(scope="session")
def large_source(pg15: PgCluster) -> postgres.Database:
    """The small seed plus ~20 MiB of incompressible bytes (a ~40 MiB dump uncompressed)."""
    source = postgres.seeded_database(pg15, "rel_large", harness.SMALL_SEED)
    harness.add_blobs(pg15, source.name)
    return source


@pytest.fixture(scope="session")
def good_backup(s3: MotoServer, reliability_bucket: str, small_source: postgres.Database) -> cli.Backup:
    """A complete backup of ``small_source`` in the session bucket (copy it before tampering)."""
    return cli.take_backup(s3, reliability_bucket, small_source.url)


@pytest.fixture(scope="session")
def good_backup18(s3: MotoServer, reliability_bucket: str, pg18: PgCluster) -> cli.Backup:
    """A backup of a PostgreSQL 18 database: a pg_dump 18 archive."""
    source = postgres.seeded_database(pg18, "rel_src18", harness.SMALL_SEED)
    return cli.take_backup(s3, reliability_bucket, source.url)


@pytest.fixture(scope="session")
def iam_world(tmp_root: Path) -> Iterator[IamWorld]:
    """A dedicated moto server enforcing IAM, with users for deploy/iam/'s policies."""
    world = start_iam_world(tmp_root / "moto-iam")
    try:
        yield world
    finally:
        world.server.stop()

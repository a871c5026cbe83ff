"""Fixtures of the reliability suite: seeded sources (a small one and a large one whose
dump streams long enough to strike mid-upload), one good backup to tamper with, a fault
proxy in front of the session's moto server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability import harness
from tests.reliability.faultproxy import FaultProxy
from tests.reliability.iam import IamWorld, start_iam_world
from tests.support.pgcluster import PgCluster
from tests.support.s3server import MotoServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class Source:
    cluster: PgCluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.superuser_url(self.name)


@dataclass(frozen=True)
class GoodBackup:
    """A complete backup in the session bucket (copy it before tampering)."""

    bucket: str
    key: str
    source: Source

    @property
    def keys(self) -> tuple[str, str, str]:
        stem = self.key.removesuffix(".dump")
        return self.key, stem + ".roles.sql", stem + ".manifest.json"

    def uri_in(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key}"


def _new_bucket(s3: MotoServer, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def reliability_bucket(s3: MotoServer) -> Iterator[str]:
    name = _new_bucket(s3, "abb-rel")
    yield name
    with contextlib.suppress(Exception):
        s3.delete_bucket(name)


@pytest.fixture(scope="session")
def small_source(pg15: PgCluster) -> Source:
    return Source(pg15, harness.seeded_database(pg15, "rel_small"))


@pytest.fixture(scope="session")
def large_source(pg15: PgCluster) -> Source:
    """The small seed plus ~20 MiB of incompressible bytes (a ~40 MiB dump uncompressed)."""
    name = harness.seeded_database(pg15, "rel_large")
    harness.add_blobs(pg15, name)
    return Source(pg15, name)


def _take_backup(s3: MotoServer, bucket: str, source: Source) -> GoodBackup:
    result = harness.backup(harness.job_env(s3.endpoint_url, bucket, AGENT_BOM_POSTGRES_URL=source.url))
    assert result.returncode == 0, str(result)
    uri = result.stdout.strip().splitlines()[-1]
    return GoodBackup(bucket, uri.removeprefix(f"s3://{bucket}/"), source)


@pytest.fixture(scope="session")
def good_backup(s3: MotoServer, reliability_bucket: str, small_source: Source) -> GoodBackup:
    return _take_backup(s3, reliability_bucket, small_source)


@pytest.fixture(scope="session")
def good_backup18(s3: MotoServer, reliability_bucket: str, pg18: PgCluster) -> GoodBackup:
    """A backup of a PostgreSQL 18 database: a pg_dump 18 archive."""
    source = Source(pg18, harness.seeded_database(pg18, "rel_src18"))
    return _take_backup(s3, reliability_bucket, source)


@pytest.fixture
def fault_proxy(s3: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(s3.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def empty_target(pg15: PgCluster) -> str:
    """A new empty database on the shared PostgreSQL 15 cluster."""
    name = harness.new_database(pg15, "rel_target")
    yield name
    with contextlib.suppress(Exception):
        pg15.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def iam_world(tmp_root: Path) -> Iterator[IamWorld]:
    """A dedicated moto server enforcing IAM, with users for deploy/iam/'s policies."""
    world = start_iam_world(tmp_root / "moto-iam")
    try:
        yield world
    finally:
        world.server.stop()

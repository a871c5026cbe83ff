"""Fixtures of the end-to-end tests: seeded source databases and backups of them, taken
once per session through the real CLI and shared by every test that only reads them.
A test that tampers with a backup copies it into its own bucket first."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.e2e import helpers
from tests.support.pgcluster import PgCluster
from tests.support.s3server import MotoServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class Source:
    """A seeded database: the backups' source."""

    cluster: PgCluster
    name: str
    audit_rows: dict[str, int]

    @property
    def url(self) -> str:
        return self.cluster.superuser_url(self.name)


@pytest.fixture(scope="session")
def new_bucket(s3: MotoServer) -> Iterator[Callable[[], str]]:
    """Creates buckets that live until the end of the session: one per shared backup, as
    two backups started in the same second are refused in one bucket and prefix."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(helpers.fresh_bucket(s3, "abb-e2e"))


@pytest.fixture(scope="session")
def source15(pg15: PgCluster) -> Source:
    name, rows = helpers.seeded_database(pg15, "src15")
    return Source(pg15, name, rows)


@pytest.fixture(scope="session")
def source18(pg18: PgCluster) -> Source:
    name, rows = helpers.seeded_database(pg18, "src18")
    return Source(pg18, name, rows)


@pytest.fixture(scope="session")
def backup15(s3: MotoServer, new_bucket: Callable[[], str], source15: Source) -> helpers.Backup:
    """The seeded PostgreSQL 15 database backed up with SSE-S3."""
    return helpers.take_backup(s3, new_bucket(), source15.url, AGENT_BOM_BACKUP_SSE="AES256")


@pytest.fixture(scope="session")
def backup18(s3: MotoServer, new_bucket: Callable[[], str], source18: Source) -> helpers.Backup:
    """The seeded PostgreSQL 18 database backed up (pg_dump 18 archive)."""
    return helpers.take_backup(s3, new_bucket(), source18.url)


@pytest.fixture
def empty15(pg15: PgCluster) -> str:
    """A new empty database on the shared PostgreSQL 15 cluster (a restore target)."""
    return helpers.new_database(pg15, "target")


@pytest.fixture
def empty18(pg18: PgCluster) -> str:
    return helpers.new_database(pg18, "target")

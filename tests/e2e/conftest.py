"""Fixtures of the end-to-end tests: seeded source databases and backups of them, taken
once per session through the real CLI and shared by every test that only reads them.
A test that tampers with a backup copies it into its own bucket first."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer


@pytest.fixture(scope="session")
def new_bucket(s3: MotoServer) -> Iterator[Callable[[], str]]:
    """Creates buckets that live until the end of the session: one per shared backup, as
    a second backup of the same second in one bucket and prefix takes the next second's id."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(buckets.fresh_bucket(s3, "abb-e2e"))


@pytest.fixture(scope="session")
def source15(pg15: PgCluster) -> postgres.Database:
    """The seeded database on the shared PostgreSQL 15 cluster: the backups' source."""
    return postgres.seeded_database(pg15, "src15")


@pytest.fixture(scope="session")
def source18(pg18: PgCluster) -> postgres.Database:
    return postgres.seeded_database(pg18, "src18")


@pytest.fixture(scope="session")
def backup15(s3: MotoServer, new_bucket: Callable[[], str], source15: postgres.Database) -> cli.Backup:
    """The seeded PostgreSQL 15 database backed up with SSE-S3."""
    return cli.take_backup(s3, new_bucket(), source15.url, AGENT_BOM_BACKUP_SSE="AES256")


@pytest.fixture(scope="session")
def backup18(s3: MotoServer, new_bucket: Callable[[], str], source18: postgres.Database) -> cli.Backup:
    """The seeded PostgreSQL 18 database backed up (pg_dump 18 archive)."""
    return cli.take_backup(s3, new_bucket(), source18.url)


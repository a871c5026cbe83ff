"""Fixtures of the "works where users run it" tests: a seeded database and a strict
S3-compatible store in front of the session's moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import postgres
from devstack.pgcluster import PgCluster
from tests.support.s3proxy import S3Proxy
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec


@pytest.fixture
def seeded_db(pg15: PgCluster) -> Iterator[str]:
    """A freshly seeded database on the shared PostgreSQL 15 server; yields its name."""
    name = postgres.seeded_database(pg15, "compat", SeedSpec(audit_rows_per_tenant=50)).name
    yield name
    pg15.run_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def strict_proxy(s3: MotoServer) -> Iterator[S3Proxy]:
    """A strict S3-compatible store: rejects flexible-checksum headers and aws-chunked bodies."""
    with S3Proxy(s3.endpoint_url, strict=True) as proxy:
        yield proxy

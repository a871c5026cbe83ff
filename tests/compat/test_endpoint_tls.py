"""S3-compatible endpoints with a private CA, and endpoints without regions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import cli
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer


@pytest.fixture(scope="module")
def tls_s3(tmp_root) -> Iterator[MotoServer]:  # type: ignore[no-untyped-def]
    server = MotoServer(tmp_root / "moto-tls", tls=True).start()
    server.create_bucket("tls-backups")
    yield server
    server.stop()


def test_https_endpoint_with_ca_bundle(pg15: PgCluster, seeded_db: str, tls_s3: MotoServer) -> None:
    env = cli.job_env(tls_s3.endpoint_url, "tls-backups", pg15.superuser_url(seeded_db),
                      AGENT_BOM_BACKUP_CA_BUNDLE=str(tls_s3.ca_file))
    result = cli.backup(env)
    assert result.returncode == 0, result.stderr


def test_https_endpoint_without_ca_bundle_fails_preflight(pg15: PgCluster, seeded_db: str, tls_s3: MotoServer) -> None:
    result = cli.backup(cli.job_env(tls_s3.endpoint_url, "tls-backups", pg15.superuser_url(seeded_db)))
    assert result.returncode == 4 and "AGENT_BOM_BACKUP_CA_BUNDLE" in result.stderr


def test_region_less_endpoint(pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer) -> None:
    env = cli.job_env(s3.endpoint_url, bucket, pg15.superuser_url(seeded_db))
    for name in ("AGENT_BOM_BACKUP_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        env.pop(name, None)
    result = cli.backup(env)
    assert result.returncode == 0, result.stderr

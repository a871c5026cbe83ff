"""S3-compatible stores: strict stores reject botocore's default checksum headers;
with a custom endpoint the job defaults to ``when_required`` and passes."""

from __future__ import annotations

import pytest

from tests.compat.conftest import job_env, run_cli, scratch_database
from tests.support.pgcluster import PgCluster
from tests.support.s3proxy import StrictS3Proxy


def test_strict_store_rejects_botocore_default_checksums(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: StrictS3Proxy
) -> None:
    env = job_env(pg15, seeded_db, bucket, strict_proxy.endpoint_url, AGENT_BOM_BACKUP_CHECKSUM_MODE="when_supported")
    result = run_cli(["backup"], env)
    assert result.returncode == 6 and strict_proxy.rejected  # the trap is real


def test_custom_endpoint_defaults_to_when_required_and_backs_up(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: StrictS3Proxy
) -> None:
    result = run_cli(["backup"], job_env(pg15, seeded_db, bucket, strict_proxy.endpoint_url))
    assert (result.returncode, strict_proxy.rejected) == (0, []), result.stderr


def test_backup_through_strict_store_restores(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: StrictS3Proxy
) -> None:
    env = job_env(pg15, seeded_db, bucket, strict_proxy.endpoint_url)
    uri = run_cli(["backup"], env).stdout.strip()
    target = scratch_database(pg15)
    restore_env = {**env, "AGENT_BOM_RESTORE_POSTGRES_URL": pg15.superuser_url(target)}
    result = run_cli(["restore", uri], restore_env)
    assert (result.returncode, strict_proxy.rejected) == (0, []), result.stderr


@pytest.mark.parametrize("path_style", ["true", "false"], ids=["path-style", "virtual-host-auto"])
def test_path_style_setting_reaches_the_store(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: StrictS3Proxy, path_style: str
) -> None:
    env = job_env(pg15, seeded_db, bucket, strict_proxy.endpoint_url, AGENT_BOM_BACKUP_PATH_STYLE=path_style)
    assert run_cli(["backup"], env).returncode == 0
    # path-style puts the bucket in the path; on an IP endpoint botocore's auto mode does too
    assert any(r.path.startswith(f"/{bucket}/") for r in strict_proxy.requests)

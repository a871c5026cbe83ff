"""S3-compatible stores: strict stores reject botocore's default checksum headers;
with a custom endpoint the job defaults to ``when_required`` and passes."""

from __future__ import annotations

import pytest

from tests.support import cli
from devstack.pgcluster import PgCluster
from tests.support.s3proxy import S3Proxy


def test_strict_store_rejects_botocore_default_checksums(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: S3Proxy
) -> None:
    env = cli.job_env(strict_proxy.endpoint_url, bucket, pg15.superuser_url(seeded_db),
                      AGENT_BOM_BACKUP_CHECKSUM_MODE="when_supported")
    result = cli.backup(env)
    assert result.returncode == 6 and strict_proxy.rejected  # the trap is real


def test_custom_endpoint_defaults_to_when_required_and_backs_up(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: S3Proxy
) -> None:
    result = cli.backup(cli.job_env(strict_proxy.endpoint_url, bucket, pg15.superuser_url(seeded_db)))
    assert (result.returncode, strict_proxy.rejected) == (0, []), result.stderr


def test_backup_through_strict_store_restores(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: S3Proxy
) -> None:
    result = cli.backup_and_restore(cli.job_env(strict_proxy.endpoint_url, bucket, pg15.superuser_url(seeded_db)), pg15)
    assert (result.returncode, strict_proxy.rejected) == (0, []), result.stderr


@pytest.mark.parametrize("path_style", ["true", "false"], ids=["path-style", "virtual-host-auto"])
def test_path_style_setting_reaches_the_store(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: S3Proxy, path_style: str
) -> None:
    env = cli.job_env(strict_proxy.endpoint_url, bucket, pg15.superuser_url(seeded_db),
                      AGENT_BOM_BACKUP_PATH_STYLE=path_style)
    assert cli.backup(env).returncode == 0
    # path-style puts the bucket in the path; on an IP endpoint botocore's auto mode does too
    assert any(r.path.startswith(f"/{bucket}/") for r in strict_proxy.requests)


# The SDK's own ways of naming an endpoint: ``auto`` must treat each as custom (issue 15)
def _sdk_endpoint_env(how: str, endpoint: str, config_dir) -> dict[str, str]:  # type: ignore[no-untyped-def]
    if how == "AWS_CONFIG_FILE endpoint_url":
        config = config_dir / "aws-config"
        config.write_text(f"[default]\nendpoint_url = {endpoint}\n")
        return {"AWS_CONFIG_FILE": str(config)}
    return {how: endpoint}


@pytest.mark.parametrize("how", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE endpoint_url"])
def test_endpoint_from_the_sdk_configuration_gets_when_required(
    pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: S3Proxy, how: str, tmp_path
) -> None:
    env = cli.job_env("", bucket, pg15.superuser_url(seeded_db),
                      **_sdk_endpoint_env(how, strict_proxy.endpoint_url, tmp_path))
    result = cli.backup(env)
    assert (result.returncode, strict_proxy.rejected, len(strict_proxy.requests) > 0) == (0, [], True), result.stderr

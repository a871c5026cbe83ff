"""The MinIO example's chart values, rendered and run against a strict S3-compatible
store: backup, list, verify and restore all pass with no checksum header rejected."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.helm_render import CRONJOB_TEMPLATE, REPO, deep_merge, container, render_chart
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from tests.support.s3proxy import S3Proxy
from devstack.s3server import ACCESS_KEY, SECRET_KEY


def chart_env(proxy: S3Proxy, bucket: str, database_url: str) -> dict[str, str]:
    """The CronJob container's environment for examples/minio.yaml, pointed at the proxy,
    with its secretKeyRefs resolved (CA bundle left out: the proxy speaks plain HTTP)."""
    values: dict[str, Any] = yaml.safe_load((REPO / "examples" / "minio.yaml").read_text())
    deep_merge(values, {"controlPlane": {"backup": {"destination": {
        "bucket": bucket, "endpointUrl": proxy.endpoint_url, "caBundle": {"configMapName": ""}}}}})
    (cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
    backup = values["controlPlane"]["backup"]
    secrets = {
        backup["database"]["existingSecret"]: {"AGENT_BOM_POSTGRES_URL": database_url},
        backup["destination"]["staticCredentials"]["existingSecret"]: {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    }
    return cli.base_env(**cli.container_env(container(cronjob), secrets))


@pytest.fixture
def minio_env(pg15: PgCluster, seeded_db: str, bucket: str, strict_proxy: S3Proxy) -> dict[str, str]:
    return chart_env(strict_proxy, bucket, pg15.superuser_url(seeded_db))


def test_chart_values_for_a_strict_store_back_up(minio_env: dict[str, str], strict_proxy: S3Proxy) -> None:
    result = cli.backup(minio_env)
    assert (result.returncode, strict_proxy.rejected) == (0, []), result.stderr


def test_list_and_verify_pass_through_the_strict_store(minio_env: dict[str, str], strict_proxy: S3Proxy) -> None:
    assert cli.backup(minio_env).returncode == 0
    listed = cli.run_cli(["list", "--json"], minio_env)
    verified = cli.run_cli(["verify", "latest"], minio_env)
    assert (listed.returncode, verified.returncode, strict_proxy.rejected) == (0, 0, []), verified.stderr


def test_restore_passes_through_the_strict_store(
    minio_env: dict[str, str], strict_proxy: S3Proxy, pg15: PgCluster
) -> None:
    assert cli.backup(minio_env).returncode == 0
    target = postgres.new_database(pg15, "restore")
    result = cli.restore(minio_env, "latest", pg15.superuser_url(target))
    assert (result.returncode, strict_proxy.rejected) == (0, []), result.stderr

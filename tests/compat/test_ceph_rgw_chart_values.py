"""examples/ceph-rgw.yaml, rendered by the chart and run against Ceph RGW over https: the
CronJob container's command and environment (secretKeyRefs resolved, the CA bundle's
volume mount played by a file) back up with SSE-KMS confirmed, and list, verify and
restore pass with the same values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.pgcluster import PgCluster
from devstack.rgw import RgwServer
from devstack.s3server import ACCESS_KEY, SECRET_KEY
from tests.chart.helm_render import CRONJOB_TEMPLATE, REPO, deep_merge, container, render_chart
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

EXAMPLE = REPO / "examples" / "ceph-rgw.yaml"


def _mounted_files(cronjob: dict[str, Any], files: dict[str, Path]) -> dict[str, Path]:
    """Path in the pod -> local file, for the Secret volumes the container mounts
    (``files`` maps Secret name -> the local file holding its one key)."""
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container(cronjob).get("volumeMounts", [])}
    paths = {}
    for volume in pod["volumes"]:
        secret = volume.get("secret", {})
        if secret.get("secretName") in files:
            for item in secret["items"]:
                paths[f"{mounts[volume['name']]}/{item['path']}"] = files[secret["secretName"]]
    return paths


def chart_env(rgw: RgwServer, bucket: str, database_url: str) -> dict[str, str]:
    """The CronJob container's environment for the example, pointed at the RGW test
    server's https endpoint and bucket (nothing else changed)."""
    values: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    deep_merge(values, {"controlPlane": {"backup": {"destination": {
        "bucket": bucket, "endpointUrl": rgw.https_endpoint_url}}}})
    (cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
    destination = values["controlPlane"]["backup"]["destination"]
    credentials = destination["staticCredentials"]
    secrets = {
        "agent-bom-postgres": {"AGENT_BOM_POSTGRES_URL": database_url},
        credentials["existingSecret"]: {credentials["accessKeyIdKey"]: ACCESS_KEY,
                                        credentials["secretAccessKeyKey"]: SECRET_KEY},
    }
    env = cli.container_env(container(cronjob), secrets)
    mounted = _mounted_files(cronjob, {destination["caBundle"]["secretName"]: rgw.ca_file})
    env = {name: str(mounted.get(value, value)) for name, value in env.items()}
    return cli.base_env(**env)


@pytest.fixture(scope="module")
def rook_env(rgw: RgwServer, pg15: PgCluster) -> Any:
    source = postgres.seeded_database(pg15, "rook")
    with buckets.fresh_bucket(rgw, "abb-rook") as bucket:
        yield chart_env(rgw, bucket, source.url), source, bucket


@pytest.fixture(scope="module")
def backed_up(rook_env: Any, rgw: RgwServer) -> tuple[cli.Run, dict]:
    env, _, bucket = rook_env
    run = cli.backup(env)
    manifest = buckets.read_manifest(rgw.client(tls=True), bucket, run.uri.removeprefix(f"s3://{bucket}/")) \
        if run.returncode == 0 else {}
    return run, manifest


def test_example_points_at_rgw_over_https_with_its_ca(rook_env: Any, rgw: RgwServer) -> None:
    env, _, _ = rook_env
    assert (env["AGENT_BOM_BACKUP_ENDPOINT_URL"], env["AGENT_BOM_BACKUP_CA_BUNDLE"]) == (
        rgw.https_endpoint_url, str(rgw.ca_file))


def test_example_values_back_up(backed_up: tuple[cli.Run, dict]) -> None:
    run, _ = backed_up
    assert run.returncode == 0, str(run)


def test_example_encryption_is_confirmed_by_rgw(backed_up: tuple[cli.Run, dict], rgw: RgwServer) -> None:
    _, manifest = backed_up
    confirmed = manifest["storage"]["encryption_confirmed"]
    assert (confirmed["mode"], confirmed["kms_key_id"]) == ("aws:kms", rgw.kms_key_id)


def test_list_and_verify_pass_with_the_example_values(rook_env: Any, backed_up: tuple[cli.Run, dict]) -> None:
    env, _, _ = rook_env
    listed = cli.run_cli(["list", "--json"], env)
    verified = cli.run_cli(["verify", "latest"], env)
    assert (listed.returncode, verified.returncode) == (0, 0), verified.stderr + listed.stderr


def test_restore_with_the_example_values(rook_env: Any, backed_up: tuple[cli.Run, dict], pg15: PgCluster) -> None:
    env, source, _ = rook_env
    target = postgres.new_database(pg15, "rook_restore")
    run = cli.restore_script(env, "latest", pg15.superuser_url(target), "us-east-1")
    assert (run.returncode, helpers.tenant_counts(pg15, target, "audit_log")) == (0, source.audit_rows), str(run)

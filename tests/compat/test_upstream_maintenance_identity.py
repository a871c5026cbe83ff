"""A values file of the full agent-bom chart (tests/chart/fixtures/agent-bom-eks-production-values.yaml,
with controlPlane.postgresSecrets) renders a backup CronJob that backs up through agent-bom's
maintenance identity, and every tenant comes back.

The seed's row-level security admits the maintenance role (a member of agent_bom_rls_maintenance,
no BYPASSRLS) only under the session setting app.bypass_rls=1, as agent-bom's policies do. The
rendered container's command and environment (Secrets resolved) run against it; the same
environment without the chart's session setting fails instead of dropping tenants."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from psycopg import sql

from devstack.pgcluster import PgCluster
from devstack.s3server import ACCESS_KEY, SECRET_KEY, MotoServer
from devstack.seed import tenant_distribution
from tests.chart.helm_render import CRONJOB_TEMPLATE, deep_merge, container, render_chart
from tests.chart.test_upstream_values import FILLED_IN, PRODUCTION
from tests.e2e.helpers import table_counts
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

MAINTENANCE_GROUP = "agent_bom_rls_maintenance"
RLS_TABLES = ("api_keys", "audit_log", "scan_jobs")
PASSWORD = "maintenance-role-password"


@dataclass(frozen=True)
class Source:
    database: postgres.Database
    role: str

    @property
    def maintenance_url(self) -> str:
        return self.database.cluster.url(self.database.name, self.role, PASSWORD)


@pytest.fixture(scope="module")
def source(pg15: PgCluster) -> Source:
    database = postgres.seeded_database(pg15, "maint")
    role = postgres.unique_name("agent_bom_maintenance")
    with postgres.connect(pg15, database.name) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MAINTENANCE_GROUP,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(MAINTENANCE_GROUP)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {} IN ROLE {}").format(
            sql.Identifier(role), sql.Literal(PASSWORD), sql.Identifier(MAINTENANCE_GROUP)))
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role)))
        for table in RLS_TABLES:
            conn.execute(sql.SQL(
                "CREATE POLICY maintenance_bypass ON {} FOR SELECT TO {} "
                "USING (current_setting('app.bypass_rls', true) = '1')"
            ).format(sql.Identifier(table), sql.Identifier(MAINTENANCE_GROUP)))
        conn.execute("ANALYZE")
    return Source(database, role)


def rendered_environment(s3: MotoServer, bucket: str, source: Any,
                         backup: dict[str, Any] | None = None) -> tuple[list[str], dict[str, str]]:
    """The CronJob's container args and environment for the production values file (plus
    ``backup`` merged into controlPlane.backup), pointed at moto (static credentials stand in
    for IRSA), with its Secrets resolved; ``source.maintenance_url`` is the maintenance URL."""
    text = PRODUCTION.read_text()
    for placeholder, value in FILLED_IN.items():
        text = text.replace(placeholder, value)
    values: dict[str, Any] = yaml.safe_load(text)
    deep_merge(values, {"controlPlane": {"backup": {"destination": {
        "bucket": bucket, "endpointUrl": s3.endpoint_url, "pathStyle": True,
        "encryption": {"mode": "AES256", "kmsKeyId": ""},
        "staticCredentials": {"enabled": True, "existingSecret": "agent-bom-backup-s3"}}}}})
    deep_merge(values, {"controlPlane": {"backup": backup or {}}})
    (cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
    maintenance_secret = values["controlPlane"]["postgresSecrets"]["maintenanceSecretRef"]["name"]
    secrets = {
        maintenance_secret: {"AGENT_BOM_POSTGRES_MAINTENANCE_URL": source.maintenance_url},
        "agent-bom-backup-s3": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    }
    job = container(cronjob)
    assert job["command"] == ["agent-bom-backup"]
    return job["args"], cli.base_env(**cli.container_env(job, secrets))


@pytest.fixture(scope="module")
def backed_up(s3: MotoServer, source: Source) -> Iterator[tuple[cli.Run, str]]:
    with buckets.fresh_bucket(s3, "abb-maint") as bucket:
        args, env = rendered_environment(s3, bucket, source)
        yield cli.run_cli(args, env), bucket


def test_the_rendered_job_backs_up_as_the_maintenance_role(backed_up):
    run, _ = backed_up
    assert run.returncode == 0, str(run)


def test_the_manifest_counts_every_row(backed_up, s3: MotoServer, source: Source):
    run, bucket = backed_up
    manifest = buckets.read_manifest(s3.client(), bucket, run.uri.removeprefix(f"s3://{bucket}/"))
    counts = {f"{t['schema']}.{t['name']}": t["rows"] for t in manifest["tables"]}
    assert counts == table_counts(source.database.cluster, source.database.name)


def test_every_tenant_is_restored(backed_up, s3: MotoServer, source: Source, pg15: PgCluster):
    run, bucket = backed_up
    target = postgres.new_database(pg15, "maintrestored")
    restored = cli.restore(cli.job_env(s3.endpoint_url, bucket), run.uri, pg15.superuser_url(target))
    assert restored.returncode == 0, str(restored)
    with postgres.connect(pg15, target) as conn:
        assert tenant_distribution(conn) == source.database.audit_rows


def test_without_the_bypass_setting_the_backup_fails_instead_of_dropping_tenants(s3: MotoServer, source: Source):
    """The policies admit the role only under app.bypass_rls=1: the setting the chart adds is what makes it work."""
    with buckets.fresh_bucket(s3, "abb-maint-nobypass") as bucket:
        args, env = rendered_environment(s3, bucket, source)
        assert env.pop("AGENT_BOM_BACKUP_SESSION_SETTINGS") == "app.bypass_rls=1"
        run = cli.run_cli(args, env)
        assert run.returncode == 7, str(run)
        assert "row-level security hid rows from the backup" in run.error_message
        # the run took its backup id (the claim) before the dump showed it was filtered
        assert buckets.without_claims(buckets.object_keys(s3.client(), bucket)) == []

"""Upstream agent-bom's own schema (issue 25), built by its Alembic migrations from
../shared/reference/upstream-agent-bom-postgres/ and seeded for a few tenants, backed up as
its maintenance identity (``agent_bom_maintenance``, ``--enable-row-security``,
``app.bypass_rls=1``) by the CronJob rendered from upstream's values file
(``postgresSecrets.maintenanceSecretRef``).

At head (agent-bom >= 0.102) the signing-keys table is REVOKEd from the maintenance roles:
the backup is refused with one message until a choice is made; leaving the table out or a
GRANT SELECT each back up and restore. At ``20260818_01`` (before the keys table) no choice is
needed. Restores go into a managed-style cluster (the restore role ``LOGIN CREATEDB
CREATEROLE``, not the bootstrap superuser) where the restore role may act as the owners;
upstream's tables are owned by the superuser that ran the migrations, which no managed admin
may act as (the restore-truth issue owns that case), so those restores run as the target's
superuser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import upstream
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.s3server import MotoServer
from tests.compat.test_upstream_maintenance_identity import rendered_environment
from tests.support import cli

PASSWORD = "upstream-maintenance-password"

missing = upstream.reference_missing()
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")


@dataclass(frozen=True)
class Source:
    cluster: PgCluster
    head: str
    before_keys: str
    tenants: dict[str, int]

    def url(self, database: str) -> str:
        return self.cluster.url(database, upstream.MAINTENANCE_ROLE, PASSWORD)


@pytest.fixture(scope="module")
def source(pg_cluster_factory: PgClusterPool, tmp_root: Path) -> Source:
    """A cluster of its own: upstream's migrations create cluster-wide roles."""
    cluster = pg_cluster_factory(15, fresh=True)
    scratch = tmp_root / cli.unique_name("upstream")
    databases = {}
    for revision in ("head", upstream.BEFORE_KEYS_REVISION):
        name = cli.new_database(cluster, "upstream")
        upstream.build_schema(cluster, name, scratch, revision)
        tenants = upstream.seed(cluster, name)
        databases[revision] = name
    upstream.maintenance_url(cluster, databases["head"], PASSWORD)
    return Source(cluster, databases["head"], databases[upstream.BEFORE_KEYS_REVISION], tenants)


@pytest.fixture(scope="module")
def bucket(s3: MotoServer) -> Iterator[str]:
    with cli.fresh_bucket(s3, "abb-upstream") as name:
        yield name


@dataclass(frozen=True)
class _Maintenance:
    maintenance_url: str


def _backup(s3: MotoServer, bucket: str, source: Source, database: str, exclude: list[str] | None = None) -> cli.Run:
    """The CronJob rendered from upstream's production values file (postgresSecrets.maintenanceSecretRef:
    the maintenance identity, --enable-row-security, app.bypass_rls=1), with ``exclude`` as
    controlPlane.backup.dump.excludeTables."""
    backup = {"dump": {"excludeTables": exclude}} if exclude else None
    args, env = rendered_environment(s3, bucket, _Maintenance(source.url(database)), backup)
    return cli.run_cli(args, env)


@dataclass(frozen=True)
class Restored:
    backup: cli.Run
    restore: cli.Run
    report: dict
    tenants: dict[str, int]


def _restore(s3: MotoServer, bucket: str, backup: cli.Run, target: PgCluster, tmp_root: Path) -> Restored:
    database = cli.new_database(target, "uprestored")
    report = tmp_root / f"{cli.unique_name('upstream-report')}.json"
    run = cli.restore(cli.job_env(s3.endpoint_url, bucket), backup.uri, target.superuser_url(database),
                      "--create-missing-roles", "--report", str(report))
    tenants = dict(target.run_sql("SELECT team_id, count(*) FROM scan_jobs GROUP BY 1 ORDER BY 1", database)) \
        if run.returncode == 0 else {}
    return Restored(backup, run, json.loads(report.read_text()) if report.exists() else {}, tenants)


@pytest.fixture(scope="module")
def target(pg_cluster_factory: PgClusterPool) -> PgCluster:
    """A managed-style instance: a fresh cluster whose restore admin is not its bootstrap superuser."""
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.run_sql(f"CREATE ROLE upstream_admin LOGIN CREATEDB CREATEROLE PASSWORD '{PASSWORD}'")
    return cluster


@pytest.fixture(scope="module")
def refused(s3: MotoServer, bucket: str, source: Source) -> cli.Run:
    return _backup(s3, bucket, source, source.head)


@pytest.fixture(scope="module")
def excluded(s3: MotoServer, bucket: str, source: Source, target: PgCluster, tmp_root: Path,
             refused: cli.Run) -> Restored:
    run = _backup(s3, bucket, source, source.head, exclude=[upstream.KEYS_TABLE])
    assert run.returncode == 0, str(run)
    return _restore(s3, bucket, run, target, tmp_root)


@pytest.fixture(scope="module")
def granted(s3: MotoServer, bucket: str, source: Source, target: PgCluster, tmp_root: Path,
            excluded: Restored) -> Iterator[Restored]:
    keys, role = upstream.KEYS_TABLE, upstream.MAINTENANCE_ROLE
    source.cluster.run_sql(f"GRANT SELECT ON {keys} TO {role}", source.head)
    try:
        run = _backup(s3, bucket, source, source.head)
        assert run.returncode == 0, str(run)
        yield _restore(s3, bucket, run, target, tmp_root)
    finally:
        source.cluster.run_sql(f"REVOKE SELECT ON {keys} FROM {role}", source.head)


def test_at_head_the_maintenance_identity_is_refused_with_exit_8(refused: cli.Run) -> None:
    assert refused.returncode == 8, str(refused)


def test_the_refusal_is_one_message_with_the_three_ways_out(refused: cli.Run) -> None:
    (error,) = refused.errors
    assert error["message"].startswith(
        "backup refused, nothing written: role agent_bom_maintenance may not read 1 object the dump needs: "
        "table public.agent_bom_tenant_binding_keys (owner postgres). Choose one: (1) back up as a role that may "
        "read it (its owner or a member of the owner role); (2) GRANT SELECT ON "
        "public.agent_bom_tenant_binding_keys TO agent_bom_maintenance -- the backup then holds those secrets: "
        "encrypt it client-side (age, --encrypt-to) or use SSE-KMS with a key policy that limits who may decrypt; "
        "(3) leave it out: --exclude-table public.agent_bom_tenant_binding_keys"), error["message"]


def test_leaving_the_keys_out_restores_verified_with_exclusions(excluded: Restored) -> None:
    assert (excluded.restore.returncode, excluded.report.get("status")) == (0, "verified-with-exclusions"), \
        str(excluded.restore)


def test_leaving_the_keys_out_tells_the_application_to_recreate_them(excluded: Restored) -> None:
    assert "`alembic stamp 20260818_01 && alembic upgrade head` recreates the table" in excluded.restore.stdout


def test_the_report_records_what_the_application_must_recreate(excluded: Restored) -> None:
    assert (excluded.report["excluded_tables"], len(excluded.report["must_recreate"])) == ([upstream.KEYS_TABLE], 1)


def test_leaving_the_keys_out_restores_every_tenant(excluded: Restored, source: Source) -> None:
    assert excluded.tenants == source.tenants


def test_a_grant_backs_up_and_restores_verified(granted: Restored, source: Source) -> None:
    assert (granted.restore.returncode, granted.report.get("status"), granted.tenants) == \
        (0, "verified", source.tenants), str(granted.restore)


def test_before_the_keys_table_no_choice_is_needed(s3: MotoServer, bucket: str, source: Source) -> None:
    run = _backup(s3, bucket, source, source.before_keys)
    assert run.returncode == 0, str(run)

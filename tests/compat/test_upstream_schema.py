"""Upstream agent-bom's own schema (issue 25), built by its Alembic migrations from
../shared/reference/upstream-agent-bom-postgres/ and seeded for a few tenants, backed up as
its maintenance identity (``agent_bom_maintenance``, ``--enable-row-security``,
``app.bypass_rls=1``) by the CronJob rendered from upstream's values file
(``postgresSecrets.maintenanceSecretRef``).

At head (agent-bom >= 0.102) the signing-keys table is REVOKEd from the maintenance roles:
the backup is refused with one message until a choice is made; leaving the table out or a
GRANT SELECT each back up and restore. At ``20260818_01`` (before the keys table) no choice is
needed.

Modelled on RDS at both ends. The schema at head is built by upstream's migrations run as the
database's owner, a managed-style admin (``agent_bom``: ``LOGIN CREATEDB CREATEROLE``, not a
superuser, like RDS's master user or the application role that owns the database), so
upstream's tables, functions and the trusted extensions pgcrypto/pg_trgm are its. Each backup
restores into a managed-style cluster as its admin (``upstream_admin``, ``LOGIN CREATEDB
CREATEROLE``, not the bootstrap superuser) with ``--create-missing-roles``: into a database it
created, it creates the missing owner and maintenance roles and acts as them. The database at
``20260818_01`` (only backed up) is built by the superuser: upstream's baseline runs ``ALTER ROLE
... NOSUPERUSER NOBYPASSRLS`` on roles that already exist (the head build made them), which
only a superuser may run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from devstack import upstream
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.s3server import MotoServer
from tests.compat.test_upstream_maintenance_identity import rendered_environment
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

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


#: the migration principal on the source (upstream's compose names its owner role ``agent_bom``)
MIGRATION_ADMIN = "agent_bom"
#: the restore role on the target: a managed instance's admin, not its bootstrap superuser
RESTORE_ADMIN = "upstream_admin"


def _admin_creates_database(cluster: PgCluster, admin: str, prefix: str) -> str:
    """A new database created (so owned) by ``admin``, as on a managed instance."""
    name = postgres.unique_name(prefix)
    with psycopg.connect(cluster.url("postgres", admin, PASSWORD), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


@pytest.fixture(scope="module")
def source(pg_cluster_factory: PgClusterPool, tmp_root: Path) -> Source:
    """A cluster of its own: upstream's migrations create cluster-wide roles. Head is built
    as the admin that owns the database; ``20260818_01`` afterwards as the superuser (see the
    module's docstring)."""
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.run_sql(f"CREATE ROLE {MIGRATION_ADMIN} LOGIN CREATEDB CREATEROLE PASSWORD '{PASSWORD}'")
    scratch = tmp_root / postgres.unique_name("upstream")
    head = _admin_creates_database(cluster, MIGRATION_ADMIN, "upstream")
    upstream.build_schema(cluster, head, scratch, "head", url=cluster.url(head, MIGRATION_ADMIN, PASSWORD))
    before_keys = postgres.new_database(cluster, "upstream")
    upstream.build_schema(cluster, before_keys, scratch, upstream.BEFORE_KEYS_REVISION)
    tenants = upstream.seed(cluster, head)
    assert upstream.seed(cluster, before_keys) == tenants
    upstream.maintenance_url(cluster, head, PASSWORD)
    return Source(cluster, head, before_keys, tenants)


@pytest.fixture(scope="module")
def bucket(s3: MotoServer) -> Iterator[str]:
    with buckets.fresh_bucket(s3, "abb-upstream") as name:
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
    owners: set[str]  # of the restored tables, views and sequences


def _restore(s3: MotoServer, bucket: str, backup: cli.Run, target: PgCluster, tmp_root: Path) -> Restored:
    database = _admin_creates_database(target, RESTORE_ADMIN, "uprestored")
    report = tmp_root / f"{postgres.unique_name('upstream-report')}.json"
    run = cli.restore(cli.job_env(s3.endpoint_url, bucket), backup.uri, target.url(database, RESTORE_ADMIN, PASSWORD),
                      "--create-missing-roles", "--report", str(report))
    tenants = dict(target.run_sql("SELECT team_id, count(*) FROM scan_jobs GROUP BY 1 ORDER BY 1", database)) \
        if run.returncode == 0 else {}
    owners = {row[0] for row in target.run_sql(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
        database)}
    return Restored(backup, run, json.loads(report.read_text()) if report.exists() else {}, tenants, owners)


@pytest.fixture(scope="module")
def target(pg_cluster_factory: PgClusterPool) -> PgCluster:
    """A managed-style instance: a fresh cluster whose restore admin is not its bootstrap superuser."""
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.run_sql(f"CREATE ROLE {RESTORE_ADMIN} LOGIN CREATEDB CREATEROLE PASSWORD '{PASSWORD}'")
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
        "table public.agent_bom_tenant_binding_keys (owner agent_bom). Choose one: (1) back up as a role that may "
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


@pytest.mark.parametrize("choice", ["excluded", "granted"])
def test_each_restore_runs_as_the_managed_admin_and_keeps_the_migration_owner(request: pytest.FixtureRequest,
                                                                               choice: str) -> None:
    """Neither the restore role nor the owners are a superuser (the extensions' members, owned by
    the bootstrap superuser, are no owner the restore must act as)."""
    restored: Restored = request.getfixturevalue(choice)
    assert (restored.report.get("restore_role"), restored.owners) == (RESTORE_ADMIN, {MIGRATION_ADMIN}), \
        str(restored.restore)


def test_before_the_keys_table_no_choice_is_needed(s3: MotoServer, bucket: str, source: Source) -> None:
    run = _backup(s3, bucket, source, source.before_keys)
    assert run.returncode == 0, str(run)

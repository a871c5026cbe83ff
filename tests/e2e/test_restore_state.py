"""A restore that tells the truth about the database's own state, its roles and their
memberships (issue 26, items 3, 4 and 5).

The source is upstream agent-bom's layout, modelled by hand: the application role owns
the database and its tables in ``public`` (FORCE row-level security, tenant policies), a
group "Tenant Reader" is granted SELECT and a login role is its member, and the
maintenance identity is upstream's: ``agent_bom_maintenance`` LOGIN, member of
``agent_bom_rls_maintenance``, ``statement_timeout``/``lock_timeout`` role settings,
CONNECT on the database, admitted by a policy on
``pg_has_role(session_user, 'agent_bom_rls_maintenance', 'member')`` under
``app.bypass_rls = '1'``. The database's own state: CONNECT and TEMPORARY revoked from
PUBLIC, CONNECT granted to the two login roles, a search_path, a role setting in the
database, a comment and a connection limit.

Targets are managed-style instances: the restore role is ``LOGIN CREATEDB CREATEROLE``
(not a superuser) and creates the target database, so it owns it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.s3server import MotoServer
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

ADMIN_PASSWORD = "state-admin-password"
MAINTENANCE_PASSWORD = "state-maintenance-password"
TENANTS = ("team-a", "team-b", "team-c")


@dataclass(frozen=True)
class Names:
    """Role names no other test uses (roles are cluster-wide)."""

    suffix: str

    @property
    def app(self) -> str:
        return f"agent_bom_{self.suffix}"

    @property
    def reader_group(self) -> str:
        return f"Tenant Reader {self.suffix}"

    @property
    def reader(self) -> str:
        return f"reader_{self.suffix}"

    @property
    def maintenance(self) -> str:
        return f"agent_bom_maintenance_{self.suffix}"

    @property
    def rls_maintenance(self) -> str:
        return f"agent_bom_rls_maintenance_{self.suffix}"


def _i(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def upstream_source(cluster: PgCluster, names: Names) -> str:
    """The source database in upstream agent-bom's layout; returns its name."""
    database = postgres.unique_name("upstream")
    cluster.run_sql(
        f"CREATE ROLE {_i(names.app)} LOGIN; CREATE ROLE {_i(names.reader_group)} NOLOGIN; "
        f"CREATE ROLE {_i(names.reader)} LOGIN IN ROLE {_i(names.reader_group)}; "
        f"CREATE ROLE {_i(names.rls_maintenance)} NOLOGIN; "
        f"CREATE ROLE {_i(names.maintenance)} LOGIN NOBYPASSRLS IN ROLE {_i(names.rls_maintenance)}; "
        f"ALTER ROLE {_i(names.maintenance)} SET statement_timeout = '15min'; "
        f"ALTER ROLE {_i(names.maintenance)} SET lock_timeout = '30s'")
    cluster.create_database(database, owner=names.app)
    db = _i(database)
    cluster.run_sql(
        f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC; "
        f"GRANT CONNECT ON DATABASE {db} TO {_i(names.reader)}, {_i(names.maintenance)}; "
        f"ALTER DATABASE {db} SET search_path = public; ALTER DATABASE {db} CONNECTION LIMIT 50; "
        f"COMMENT ON DATABASE {db} IS 'agent-bom control plane'; "
        f"ALTER ROLE {_i(names.reader)} IN DATABASE {db} SET work_mem = '8MB'")
    maintenance = sql.Literal(names.rls_maintenance).as_string(None)
    with postgres.connect(cluster, database) as conn, conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(names.app)))
        conn.execute(
            "CREATE TABLE tenants (id text PRIMARY KEY); "
            "CREATE TABLE findings (id bigserial PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants, "
            "detail text NOT NULL)")
        conn.execute(sql.SQL("GRANT SELECT ON tenants, findings TO {}").format(sql.Identifier(names.reader_group)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}; "
                             "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            sql.Identifier(names.rls_maintenance), sql.Identifier(names.rls_maintenance)))
        for index, tenant in enumerate(TENANTS):
            conn.execute("INSERT INTO tenants VALUES (%s)", (tenant,))
            conn.execute("INSERT INTO findings (tenant_id, detail) SELECT %s, 'finding ' || g "
                         "FROM generate_series(1, %s) g", (tenant, 5 * (index + 1)))
        conn.execute(
            "ALTER TABLE findings ENABLE ROW LEVEL SECURITY; ALTER TABLE findings FORCE ROW LEVEL SECURITY; "
            "CREATE POLICY tenant_isolation ON findings USING (tenant_id = current_setting('app.tenant_id', true) "
            f"OR (current_setting('app.bypass_rls', true) = '1' AND pg_has_role(session_user, {maintenance}, "
            "'member')))")
    cluster.run_sql("ANALYZE", database)
    return database


def managed_target(pool: PgClusterPool, major: int) -> PgCluster:
    cluster = pool(major, fresh=True)
    cluster.run_sql(f"CREATE ROLE state_admin LOGIN CREATEDB CREATEROLE PASSWORD '{ADMIN_PASSWORD}'")
    return cluster


def admin_creates_database(cluster: PgCluster) -> str:
    name = postgres.unique_name("restored")
    with psycopg.connect(cluster.url("postgres", "state_admin", ADMIN_PASSWORD), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


@dataclass(frozen=True)
class Restored:
    cluster: PgCluster
    database: str
    run: cli.Run
    report: dict[str, Any]


def restore_as_admin(s3: MotoServer, backup: cli.Backup, cluster: PgCluster, database: str, tmp_root: Path,
                     *args: str) -> Restored:
    report = tmp_root / f"{postgres.unique_name('state-report')}.json"
    run = cli.restore(cli.job_env(s3.endpoint_url, backup.bucket), backup.uri,
                      cluster.url(database, "state_admin", ADMIN_PASSWORD), "--create-missing-roles",
                      "--report", str(report), *args)
    return Restored(cluster, database, run, json.loads(report.read_text()) if report.exists() else {})


def database_state(cluster: PgCluster, database: str, names: Names) -> dict[str, Any]:
    """The database's own state as the superuser reads it, role names replaced by their part."""
    by_name = {getattr(names, part): part for part in ("app", "reader_group", "reader", "maintenance",
                                                       "rls_maintenance")}
    row = cluster.run_sql(
        "SELECT pg_get_userbyid(datdba), datconnlimit, shobj_description(oid, 'pg_database'), "
        "ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ' ' "
        "|| a.privilege_type FROM aclexplode(COALESCE(datacl, acldefault('d', datdba))) a "
        "WHERE a.grantee <> datdba ORDER BY 1) FROM pg_database WHERE datname = %s", params=[database])[0]
    settings = cluster.run_sql(
        "SELECT COALESCE(pg_get_userbyid(NULLIF(s.setrole, 0)), '-'), s.setconfig FROM pg_db_role_setting s "
        "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s ORDER BY 1", params=[database])
    acl = []
    for entry in row[3]:
        grantee, privilege = entry.rsplit(" ", 1)
        acl.append(f"{by_name.get(grantee, grantee)} {privilege}")
    return {
        "owner": by_name.get(row[0], row[0]), "connection_limit": row[1], "comment": row[2], "acl": sorted(acl),
        "settings": {by_name.get(role, role): config for role, config in settings},
    }


def memberships(cluster: PgCluster, names: Names) -> list[tuple[str, str]]:
    parts = {getattr(names, p): p for p in ("app", "reader_group", "reader", "maintenance", "rls_maintenance")}
    rows = cluster.run_sql(
        "SELECT r.rolname, m.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid "
        "JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = ANY(%s) AND m.rolname = ANY(%s) ORDER BY 1, 2",
        params=[list(parts), list(parts)])
    return sorted({(parts[r], parts[m]) for r, m in rows})


def role_settings(cluster: PgCluster, role: str) -> list[str]:
    rows = cluster.run_sql("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                           "WHERE s.setdatabase = 0 AND r.rolname = %s", params=[role])
    return sorted(rows[0][0]) if rows else []


# ------------------------------------------------------------------ fixtures
@dataclass(frozen=True)
class Source:
    cluster: PgCluster
    database: str
    names: Names
    backup: cli.Backup


@pytest.fixture(scope="module")
def source(pg15: PgCluster, s3: MotoServer, new_bucket: Callable[[], str]) -> Source:
    names = Names(postgres.unique_name("st").split("_", 1)[1])
    database = upstream_source(pg15, names)
    return Source(pg15, database, names, cli.take_backup(s3, new_bucket(), pg15.superuser_url(database)))


@pytest.fixture(scope="module")
def managed15(source: Source, pg_cluster_factory: PgClusterPool, s3: MotoServer, tmp_root: Path) -> Restored:
    """PostgreSQL 15, none of the roles on the target: the admin creates them."""
    cluster = managed_target(pg_cluster_factory, 15)
    return restore_as_admin(s3, source.backup, cluster, admin_creates_database(cluster), tmp_root)


# ------------------------------------------------------------------ the manifest records the database's state
def test_manifest_format_3_records_the_database_state(source: Source) -> None:
    manifest = source.backup.manifest
    database = manifest["database"]
    assert (manifest["format_version"], database["owner"], database["connection_limit"], database["comment"]) == (
        3, source.names.app, 50, "agent-bom control plane")


def test_manifest_records_the_membership_graph_of_the_reached_roles(source: Source) -> None:
    names = source.names
    assert source.backup.manifest["schema_fingerprint"]["memberships"] == sorted([
        f'"{names.reader_group}" <- "{names.reader}"', f'"{names.rls_maintenance}" <- "{names.maintenance}"'])


# ------------------------------------------------------------------ the managed restore of upstream's layout
def test_managed_restore_of_upstream_layout_verifies(managed15: Restored) -> None:
    assert (managed15.run.returncode, managed15.report.get("status")) == (0, "verified"), str(managed15.run)


def test_database_state_comes_back_under_the_target_name(managed15: Restored, source: Source) -> None:
    assert database_state(managed15.cluster, managed15.database, source.names) == \
        database_state(source.cluster, source.database, source.names)


def test_public_can_no_longer_connect(managed15: Restored) -> None:
    rows = managed15.cluster.run_sql("SELECT has_database_privilege('public', %s, 'CONNECT')",
                                     params=[managed15.database])
    assert rows == [(False,)]


def test_roles_reached_only_through_memberships_and_the_acl_are_created(managed15: Restored, source: Source) -> None:
    names = source.names
    assert sorted(managed15.report["roles_created"]) == sorted(
        [names.app, names.reader_group, names.reader, names.maintenance, names.rls_maintenance])


def test_memberships_are_recreated(managed15: Restored, source: Source) -> None:
    assert memberships(managed15.cluster, source.names) == memberships(source.cluster, source.names)


def test_role_settings_are_recreated(managed15: Restored, source: Source) -> None:
    names = source.names
    assert role_settings(managed15.cluster, names.maintenance) == role_settings(source.cluster, names.maintenance)


def test_every_role_statement_is_in_the_summary(managed15: Restored) -> None:
    statements = managed15.report["role_statements"]
    assert statements and all(f"role statement:    {s}" in managed15.run.stdout for s in statements)


def test_the_maintenance_identity_backs_up_the_restored_database(managed15: Restored, source: Source, s3: MotoServer,
                                                                 new_bucket: Callable[[], str]) -> None:
    """The next night's backup: the maintenance role, given a password, with row security
    on and the bypass setting, sees every row of the restored database."""
    cluster, names = managed15.cluster, source.names
    with psycopg.connect(cluster.url("postgres", "state_admin", ADMIN_PASSWORD), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(names.maintenance),
                                                                  sql.Literal(MAINTENANCE_PASSWORD)))
    backup = cli.take_backup(s3, new_bucket(), cluster.url(managed15.database, names.maintenance,
                                                           MAINTENANCE_PASSWORD),
                             AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY="true",
                             AGENT_BOM_BACKUP_SESSION_SETTINGS="app.bypass_rls=1")
    counts = {f"{t['schema']}.{t['name']}": t["rows"] for t in backup.manifest["tables"]}
    assert counts == helpers.table_counts(source.cluster, source.database) == {"public.findings": 30,
                                                                               "public.tenants": 3}


# ------------------------------------------------------------------ a superuser, the login role pre-created
@pytest.fixture(scope="module")
def superuser15(source: Source, pg_cluster_factory: PgClusterPool, s3: MotoServer, tmp_root: Path) -> Restored:
    """A self-managed target restored by the superuser, the application's login role
    pre-created by the platform team: before issue 26 this reported VERIFIED with the
    database's ACL and settings gone and the login role outside its group."""
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.run_sql(f"CREATE ROLE {_i(source.names.reader)} LOGIN")
    database = postgres.new_database(cluster, "restored")
    report = tmp_root / f"{postgres.unique_name('state-report')}.json"
    run = cli.restore(cli.job_env(s3.endpoint_url, source.backup.bucket), source.backup.uri,
                      cluster.superuser_url(database), "--create-missing-roles", "--report", str(report))
    return Restored(cluster, database, run, json.loads(report.read_text()) if report.exists() else {})


def test_superuser_restore_verifies(superuser15: Restored) -> None:
    assert (superuser15.run.returncode, superuser15.report.get("status")) == (0, "verified"), str(superuser15.run)


def test_superuser_restore_brings_the_database_state_back(superuser15: Restored, source: Source) -> None:
    assert database_state(superuser15.cluster, superuser15.database, source.names) == \
        database_state(source.cluster, source.database, source.names)


def test_membership_of_a_pre_created_login_role_is_recreated(superuser15: Restored, source: Source) -> None:
    assert memberships(superuser15.cluster, source.names) == memberships(source.cluster, source.names)


# ------------------------------------------------------------------ roles the platform pre-created (PostgreSQL 17)
@pytest.fixture(scope="module")
def precreated17(source: Source, pg_cluster_factory: PgClusterPool, s3: MotoServer, tmp_root: Path) -> Restored:
    """PostgreSQL 17, the login role and the group pre-created by the platform (a
    superuser): the admin has no ADMIN on them, so it may neither grant the membership
    nor set the role's setting in the database."""
    cluster = managed_target(pg_cluster_factory, 17)
    names = source.names
    cluster.run_sql(f"CREATE ROLE {_i(names.reader_group)} NOLOGIN; CREATE ROLE {_i(names.reader)} LOGIN")
    return restore_as_admin(s3, source.backup, cluster, admin_creates_database(cluster), tmp_root)


def test_what_cannot_be_granted_makes_the_restore_incomplete(precreated17: Restored) -> None:
    assert (precreated17.run.returncode, precreated17.report["status"]) == (12, "incomplete"), str(precreated17.run)


def test_not_restored_items_name_the_statement_to_run(precreated17: Restored, source: Source) -> None:
    names = source.names
    statements = sorted(item["statement"] for item in precreated17.report["not_restored"])
    assert statements == sorted([
        f'GRANT "{names.reader_group}" TO "{names.reader}"',
        f'ALTER ROLE "{names.reader}" IN DATABASE "{precreated17.database}" SET "work_mem" TO \'8MB\''])


def test_not_restored_items_are_in_the_summary(precreated17: Restored) -> None:
    assert "NOT RESTORED" in precreated17.run.stdout
    assert all(item["statement"] in precreated17.run.stdout for item in precreated17.report["not_restored"])


def test_the_listed_statements_complete_the_restore(precreated17: Restored, source: Source) -> None:
    for item in precreated17.report["not_restored"]:
        precreated17.cluster.run_sql(item["statement"], precreated17.database)
    assert memberships(precreated17.cluster, source.names) == memberships(source.cluster, source.names)


# ------------------------------------------------------------------ a tampered roles object
@dataclass(frozen=True)
class Tampered:
    run: cli.Run
    before: dict[str, Any]
    after: dict[str, Any]


@pytest.fixture(scope="module")
def tampered(source: Source, pg_cluster_factory: PgClusterPool, s3: MotoServer, new_bucket: Callable[[], str],
             tmp_root: Path) -> Tampered:
    """The roles object with a login role appended on a GRANT's line, and the manifest's
    hash of it updated, restored by a superuser: refused before any change."""
    client, bucket, backup = s3.client(), new_bucket(), source.backup
    cli.copy_backup(client, backup, bucket, parts=("dump",))
    roles_key, manifest_key = buckets.roles_key(backup.key), buckets.manifest_key(backup.key)
    roles = buckets.get_object(client, backup.bucket, roles_key).decode()
    grant = next(line for line in roles.splitlines() if line.startswith("GRANT "))
    roles = roles.replace(grant, grant + " CREATE ROLE backdoor LOGIN PASSWORD 'letmein';")
    manifest = dict(backup.manifest)
    manifest["roles"] = {**manifest["roles"], "size": len(roles.encode()), "sha256": buckets.sha256(roles.encode())}
    buckets.put_object(client, bucket, roles_key, roles.encode())
    buckets.put_object(client, bucket, manifest_key, json.dumps(manifest).encode())
    cluster = pg_cluster_factory(15, fresh=True)
    database = postgres.new_database(cluster, "tampered")
    before = helpers.database_state(cluster, database)
    run = cli.restore(cli.job_env(s3.endpoint_url, bucket), f"s3://{bucket}/{backup.key}",
                      cluster.superuser_url(database), "--create-missing-roles")
    return Tampered(run, before, helpers.database_state(cluster, database))


def test_tampered_roles_object_is_refused(tampered: Tampered) -> None:
    assert tampered.run.returncode == 8, str(tampered.run)
    assert "roles object is not what pg_dumpall writes" in tampered.run.error_message
    assert "CREATE ROLE backdoor" in tampered.run.error_message


def test_tampered_roles_object_changes_nothing(tampered: Tampered) -> None:
    assert tampered.after == tampered.before
    assert "backdoor" not in tampered.after["roles"]


# ------------------------------------------------------------------ an owner the restore role may not set
@pytest.fixture(scope="module")
def no_createdb(source: Source, pg_cluster_factory: PgClusterPool, s3: MotoServer, tmp_root: Path) -> Restored:
    """An admin with CREATEROLE but not CREATEDB, owning the target database: it may not
    give the database its recorded owner (ALTER DATABASE ... OWNER TO needs CREATEDB), so
    the application role gets CREATE on public instead and the owner is not restored."""
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.run_sql(f"CREATE ROLE state_admin LOGIN CREATEROLE PASSWORD '{ADMIN_PASSWORD}'")
    database = postgres.unique_name("restored")
    cluster.create_database(database, owner="state_admin")
    return restore_as_admin(s3, source.backup, cluster, database, tmp_root)


def test_an_owner_that_cannot_be_set_is_not_restored(no_createdb: Restored, source: Source) -> None:
    assert (no_createdb.run.returncode, no_createdb.report["status"]) == (12, "incomplete"), str(no_createdb.run)
    assert [item["statement"] for item in no_createdb.report["not_restored"]] == [
        f'ALTER DATABASE "{no_createdb.database}" OWNER TO "{source.names.app}"']


def test_the_application_role_gets_create_on_public_instead(no_createdb: Restored, source: Source) -> None:
    assert no_createdb.report["privileges_granted"] == [f'GRANT CREATE ON SCHEMA public TO "{source.names.app}"']
    rows = no_createdb.cluster.run_sql("SELECT has_schema_privilege(%s, 'public', 'CREATE')",
                                       no_createdb.database, params=[source.names.app])
    assert rows == [(True,)]


# ------------------------------------------------------------------ an administrator's database into an application's
def test_a_database_the_administrator_owned_restored_into_another_owners_is_incomplete(
        backup15: cli.Backup, pg_cluster_factory: PgClusterPool, s3: MotoServer, tmp_root: Path) -> None:
    """The seeded source database belongs to the superuser; the target to a plain role:
    not silently VERIFIED, but listed with the statement that gives it to the administrator."""
    cluster = pg_cluster_factory(15, fresh=True)
    cluster.run_sql("CREATE ROLE platform_app NOLOGIN")
    database = postgres.unique_name("appowned")
    cluster.create_database(database, owner="platform_app")
    report_path = tmp_root / f"{postgres.unique_name('state-report')}.json"
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, cluster.superuser_url(database),
                      "--create-missing-roles", "--report", str(report_path))
    report = json.loads(report_path.read_text())
    assert (run.returncode, [i["statement"] for i in report["not_restored"]]) == (
        12, [f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER']), str(run)


# ------------------------------------------------------------------ --clean: the recorded ACL once verified
@pytest.fixture(scope="module")
def clean15(source: Source, pg_cluster_factory: PgClusterPool, s3: MotoServer, tmp_root: Path) -> Restored:
    """A --clean over a non-empty target whose ACL is PostgreSQL's default (PUBLIC may
    connect): CONNECT is revoked for the change, and what comes back when the restore is
    verified is the backup's recorded ACL, not the target's old one."""
    cluster = managed_target(pg_cluster_factory, 15)
    database = admin_creates_database(cluster)
    with psycopg.connect(cluster.url(database, "state_admin", ADMIN_PASSWORD), autocommit=True) as conn:
        conn.execute("CREATE TABLE old_data (id int)")
    return restore_as_admin(s3, source.backup, cluster, database, tmp_root,
                            "--clean", "--confirm-target", database, "--no-safety-backup")


def test_clean_restore_verifies(clean15: Restored) -> None:
    assert (clean15.run.returncode, clean15.report.get("status")) == (0, "verified"), clean15.run.stderr


def test_clean_restore_ends_with_the_recorded_acl(clean15: Restored, source: Source) -> None:
    assert database_state(clean15.cluster, clean15.database, source.names)["acl"] == \
        database_state(source.cluster, source.database, source.names)["acl"]


def test_after_a_clean_restore_public_can_no_longer_connect(clean15: Restored) -> None:
    rows = clean15.cluster.run_sql("SELECT has_database_privilege('public', %s, 'CONNECT')", params=[clean15.database])
    assert rows == [(False,)]

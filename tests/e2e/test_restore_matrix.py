"""The restore matrix: restore role x target x PostgreSQL major.

Restore roles as they exist where users restore: a superuser (self-managed), a managed
instance's admin (``LOGIN CREATEDB CREATEROLE``, no BYPASSRLS: RDS/Aurora, Cloud SQL,
Azure) and a role that only owns the target database. Targets: a fresh database on a
cluster that lacks the application's roles, then (same roles, now present) a non-empty
database replaced with ``--clean``. PostgreSQL 15 (Debian: server and clients), 17 (server
build; pg_dump/pg_restore 18) and 18 (embedded: server and clients).

The seed has FORCE-RLS tables owned by an application role, policies naming three roles,
grants and a membership. Each cell either restores with identical per-tenant counts,
policies, owners and row-level security flags, or refuses before any change with the
target database and the cluster's roles exactly as they were.

One fresh target cluster per major is shared by its cells; each (major, restore role)
uses its own application role names, so a cell never sees another cell's roles.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.s3server import MotoServer
from devstack.seed import SeedRoles, SeedSpec, create_roles, seed
from tests.e2e import helpers
from tests.support import cli
from tests.support import postgres

MAJORS = (15, 17, 18)
RESTORE_ROLES = ("superuser", "admin", "owner")
TARGETS = ("fresh", "clean")
PASSWORD = "matrix-role-password"
SOURCE_SEED = SeedSpec(audit_rows_per_tenant=30, payload_bytes=32)
OTHER_DATA = SeedSpec(tenants=("team-other",), audit_rows_per_tenant=7, payload_bytes=32)

#: what each cell must end in: (status, exit code, a fragment of the error line)
EXPECTED: dict[tuple[str, str], tuple[str, int, str]] = {
    ("superuser", "fresh"): ("verified", 0, ""),
    ("superuser", "clean"): ("verified", 0, ""),
    ("admin", "fresh"): ("verified", 0, ""),
    ("admin", "clean"): ("verified", 0, ""),
    ("owner", "fresh"): ("refused", 8, "may not create roles (no CREATEROLE)"),
    ("owner", "clean"): ("refused", 8, "cannot act as"),
}
CELLS = [(major, role, target) for major in MAJORS for role in RESTORE_ROLES for target in TARGETS]


def _id(cell: tuple[int, str, str]) -> str:
    return f"pg{cell[0]}-{cell[1]}-{cell[2]}"


@dataclass(frozen=True)
class Source:
    database: postgres.Database
    roles: SeedRoles
    backup: cli.Backup


@dataclass(frozen=True)
class Outcome:
    run: cli.Run
    report: dict[str, Any]
    database: str
    before: dict[str, Any]
    after: dict[str, Any]
    restored: dict[str, Any] | None  # fidelity() of the target, when it restored
    source: dict[str, Any]
    safety_files: list[Path]


def fidelity(cluster: PgCluster, database: str) -> dict[str, Any]:
    """What a faithful restore reproduces, read as the superuser: rows per table and per
    tenant, policies and the roles they name, owners, row-level security flags, grants."""
    with postgres.connect(cluster, database) as conn:
        tenants = {}
        for (table,) in conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                                     "AND column_name = 'team_id' ORDER BY 1").fetchall():
            rows = conn.execute(sql.SQL("SELECT team_id, count(*) FROM {} GROUP BY 1 ORDER BY 1").format(
                sql.Identifier("public", table))).fetchall()
            tenants[table] = {team: int(n) for team, n in rows}
        return {
            "rows": helpers.table_counts(cluster, database),
            "tenants": tenants,
            "policies": conn.execute("SELECT tablename, policyname, roles::text, cmd, qual, with_check "
                                     "FROM pg_policies ORDER BY 1, 2").fetchall(),
            "owners": conn.execute("SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner) FROM pg_class c "
                                   "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                                   "ORDER BY 1").fetchall(),
            "row_security": conn.execute("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class c "
                                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                                         "AND c.relkind = 'r' ORDER BY 1").fetchall(),
            "grants": conn.execute("SELECT table_name, grantee, privilege_type FROM information_schema.table_privileges "
                                   "WHERE table_schema = 'public' ORDER BY 1, 2, 3").fetchall(),
        }


class Matrix:
    """Runs the cells on first use; each (major, restore role) runs fresh, then clean."""

    def __init__(self, request: pytest.FixtureRequest, s3: MotoServer, pool: PgClusterPool,
                 new_bucket: Callable[[], str], tmp_root: Path) -> None:
        self.request, self.s3, self.pool, self.new_bucket, self.tmp_root = request, s3, pool, new_bucket, tmp_root
        self.targets: dict[int, PgCluster] = {}
        self.outcomes: dict[tuple[int, str, str], Outcome] = {}

    # -------------------------------------------------------------- clusters and roles
    def source_cluster(self, major: int) -> PgCluster:
        if major == 15:
            return self.request.getfixturevalue("pg15")
        if major == 18:
            return self.request.getfixturevalue("pg18")
        return self.pool(major)

    def target(self, major: int) -> PgCluster:
        if major not in self.targets:
            cluster = self.pool(major, fresh=True)
            cluster.run_sql(f"CREATE ROLE matrix_admin LOGIN CREATEDB CREATEROLE PASSWORD '{PASSWORD}'; "
                            f"CREATE ROLE matrix_owner LOGIN PASSWORD '{PASSWORD}'")
            self.targets[major] = cluster
        return self.targets[major]

    def url(self, major: int, role: str, database: str) -> str:
        cluster = self.target(major)
        if role == "superuser":
            return cluster.superuser_url(database)
        return cluster.url(database, f"matrix_{role}", PASSWORD)

    def create_database(self, major: int, role: str, prefix: str) -> str:
        """A new database as the restore role would have it: created by the admin (so it
        owns it), or owned by the owner role, or the superuser's."""
        cluster, name = self.target(major), postgres.unique_name(prefix)
        if role == "admin":
            with psycopg.connect(self.url(major, role, "postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            cluster.create_database(name, owner="matrix_owner" if role == "owner" else None)
        return name

    # -------------------------------------------------------------- sources
    def source(self, major: int, role: str) -> Source:
        key = f"source_{major}_{role}"
        cached = getattr(self, key, None)
        if cached is None:
            roles = SeedRoles.suffixed(postgres.unique_name(f"{role[:3]}{major}").split("_", 1)[1])
            database = postgres.seeded_database(self.source_cluster(major), f"msrc{major}",
                                           SeedSpec(**{**SOURCE_SEED.__dict__, "roles": roles}))
            cached = Source(database, roles, cli.take_backup(self.s3, self.new_bucket(), database.url))
            setattr(self, key, cached)
        return cached

    # -------------------------------------------------------------- cells
    def outcome(self, major: int, role: str, target: str) -> Outcome:
        key = (major, role, target)
        if key not in self.outcomes:
            if target == "clean":
                self.outcome(major, role, "fresh")  # the fresh cell runs first: it is where the roles come from
            self.outcomes[key] = self._run(major, role, target)
        return self.outcomes[key]

    def _run(self, major: int, role: str, target: str) -> Outcome:
        source, cluster = self.source(major, role), self.target(major)
        database = self.create_database(major, role, f"m{target}")
        args = ["--create-missing-roles"]
        if target == "clean":
            self._fill(major, role, database, source.roles)
            args += ["--clean", "--confirm-target", database]
        safety_dir = self.tmp_root / postgres.unique_name("matrix-safety")
        report_path = self.tmp_root / f"{postgres.unique_name('matrix-report')}.json"
        before = helpers.database_state(cluster, database)
        run = cli.restore(cli.job_env(self.s3.endpoint_url, source.backup.bucket), source.backup.uri,
                          self.url(major, role, database), *args, "--safety-backup-dir", str(safety_dir),
                          "--report", str(report_path))
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        restored = fidelity(cluster, database) if run.returncode == 0 else None
        return Outcome(run, report, database, before, helpers.database_state(cluster, database), restored,
                       fidelity(source.database.cluster, source.database.name), sorted(safety_dir.glob("*")))

    def _fill(self, major: int, role: str, database: str, roles: SeedRoles) -> None:
        """Make the target non-empty as production is: the application's roles (created by
        the restore role when it may create roles, as on a managed instance), other data."""
        cluster = self.target(major)
        creator = self.url(major, role, "postgres") if role != "owner" else cluster.superuser_url("postgres")
        with psycopg.connect(creator, autocommit=True) as conn:
            create_roles(conn, roles)
        with postgres.connect(cluster, database) as conn:
            seed(conn, SeedSpec(**{**OTHER_DATA.__dict__, "roles": roles}))


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, s3: MotoServer, pg_cluster_factory: PgClusterPool,
           new_bucket: Callable[[], str], tmp_root: Path) -> Iterator[Matrix]:
    yield Matrix(request, s3, pg_cluster_factory, new_bucket, tmp_root)


@pytest.fixture(params=CELLS, ids=[_id(c) for c in CELLS])
def cell(request: pytest.FixtureRequest, matrix: Matrix) -> tuple[tuple[int, str, str], Outcome]:
    key = request.param
    return key, matrix.outcome(*key)


VERIFIED = [c for c in CELLS if EXPECTED[c[1:]][0] == "verified"]
REFUSED = [c for c in CELLS if EXPECTED[c[1:]][0] == "refused"]


def _outcome(matrix: Matrix, key: tuple[int, str, str]) -> Outcome:
    return matrix.outcome(*key)


def test_cell_exits_as_expected(cell: tuple[tuple[int, str, str], Outcome]) -> None:
    key, outcome = cell
    assert outcome.run.returncode == EXPECTED[key[1:]][1], str(outcome.run)


def test_cell_reports_the_expected_status(cell: tuple[tuple[int, str, str], Outcome]) -> None:
    key, outcome = cell
    assert outcome.report["status"] == EXPECTED[key[1:]][0], str(outcome.run)


@pytest.mark.parametrize("key", VERIFIED, ids=[_id(c) for c in VERIFIED])
def test_restored_rows_per_table_and_tenant_match_the_source(matrix: Matrix, key: tuple[int, str, str]) -> None:
    outcome = _outcome(matrix, key)
    assert outcome.restored is not None, str(outcome.run)
    assert (outcome.restored["rows"], outcome.restored["tenants"]) == (outcome.source["rows"], outcome.source["tenants"])


@pytest.mark.parametrize("part", ["policies", "owners", "row_security", "grants"])
@pytest.mark.parametrize("key", VERIFIED, ids=[_id(c) for c in VERIFIED])
def test_restored_schema_part_matches_the_source(matrix: Matrix, key: tuple[int, str, str], part: str) -> None:
    outcome = _outcome(matrix, key)
    assert outcome.restored is not None, str(outcome.run)
    assert outcome.restored[part] == outcome.source[part]


@pytest.mark.parametrize("key", VERIFIED, ids=[_id(c) for c in VERIFIED])
def test_verification_counted_what_was_restored(matrix: Matrix, key: tuple[int, str, str]) -> None:
    """The report's counts are the rows the superuser counts in the restored tables: the
    admin's NO FORCE counting neither misses nor invents rows."""
    outcome = _outcome(matrix, key)
    counted = {t["table"]: t["actual"] for t in outcome.report["verification"]["tables"]}
    assert outcome.restored is not None and counted == outcome.restored["rows"]


@pytest.mark.parametrize("key", REFUSED, ids=[_id(c) for c in REFUSED])
def test_refusal_names_its_reason(matrix: Matrix, key: tuple[int, str, str]) -> None:
    outcome = _outcome(matrix, key)
    assert EXPECTED[key[1:]][2] in outcome.run.error_message, str(outcome.run)


@pytest.mark.parametrize("key", REFUSED, ids=[_id(c) for c in REFUSED])
def test_refusal_leaves_the_target_and_the_roles_unchanged(matrix: Matrix, key: tuple[int, str, str]) -> None:
    outcome = _outcome(matrix, key)
    assert outcome.after == outcome.before


@pytest.mark.parametrize("key", REFUSED, ids=[_id(c) for c in REFUSED])
def test_refusal_happens_in_the_plan(matrix: Matrix, key: tuple[int, str, str]) -> None:
    outcome = _outcome(matrix, key)
    assert (outcome.report["failed_step"], outcome.report["target_changed"], outcome.safety_files) == ("plan", False, [])


CLEANED = [c for c in VERIFIED if c[2] == "clean"]


@pytest.mark.parametrize("key", CLEANED, ids=[_id(c) for c in CLEANED])
def test_clean_cell_keeps_a_safety_dump_of_the_replaced_data(matrix: Matrix, key: tuple[int, str, str]) -> None:
    outcome = _outcome(matrix, key)
    assert [str(p) for p in outcome.safety_files] == [outcome.report["safety_backup"]]


ADMIN = [c for c in VERIFIED if c[1] == "admin"]


@pytest.mark.parametrize("key", ADMIN, ids=[_id(c) for c in ADMIN])
def test_admin_restore_reports_the_attributes_it_could_not_grant_or_none(matrix: Matrix, key: tuple[int, str, str]) -> None:
    # the seed's roles need no SUPERUSER/REPLICATION/BYPASSRLS: nothing is dropped
    outcome = _outcome(matrix, key)
    assert outcome.report["roles_attributes_dropped"] == {}


@pytest.mark.parametrize("major", MAJORS)
def test_admin_fresh_restore_grants_itself_the_owner_role(matrix: Matrix, major: int) -> None:
    outcome = _outcome(matrix, (major, "admin", "fresh"))
    assert outcome.report["memberships_granted"] == [matrix.source(major, "admin").roles.owner]



# ------------------------------------------------------------------ PostgreSQL 16+: roles the admin did not create
@dataclass(frozen=True)
class NotAdministered:
    refused: Outcome
    grant: str
    restored: cli.Run


@pytest.fixture(scope="module")
def not_administered(matrix: Matrix) -> NotAdministered:
    """PostgreSQL 17, the application's roles created by a superuser (not by the admin):
    the admin has no ADMIN on them, so it cannot grant itself the owner role. Refused in
    the plan, naming the GRANT; once a platform admin runs exactly that, it restores."""
    major = 17
    roles = SeedRoles.suffixed(postgres.unique_name("na").split("_", 1)[1])
    database = postgres.seeded_database(matrix.source_cluster(major), "msrc_na", SeedSpec(**{**SOURCE_SEED.__dict__,
                                                                                     "roles": roles}))
    backup = cli.take_backup(matrix.s3, matrix.new_bucket(), database.url)
    cluster = matrix.target(major)
    with psycopg.connect(cluster.admin_conninfo, autocommit=True) as conn:
        create_roles(conn, roles)
    target = matrix.create_database(major, "admin", "mna")
    env = cli.job_env(matrix.s3.endpoint_url, backup.bucket)
    before = helpers.database_state(cluster, target)
    run = cli.restore(env, backup.uri, matrix.url(major, "admin", target), "--create-missing-roles")
    refused = Outcome(run, {}, target, before, helpers.database_state(cluster, target), None, {}, [])
    grant = run.error_message.split("a platform admin runs: ", 1)[-1].split(";", 1)[0]
    cluster.run_sql(grant)
    restored = cli.restore(env, backup.uri, matrix.url(major, "admin", target), "--create-missing-roles")
    return NotAdministered(refused, grant, restored)


def test_admin_without_admin_option_is_refused(not_administered: NotAdministered) -> None:
    assert not_administered.refused.run.returncode == 8, str(not_administered.refused.run)


def test_refusal_names_the_grant_with_inherit_and_set(not_administered: NotAdministered) -> None:
    assert not_administered.grant.endswith('TO "matrix_admin" WITH INHERIT TRUE, SET TRUE'), not_administered.grant


def test_refusal_without_admin_option_changes_nothing(not_administered: NotAdministered) -> None:
    assert not_administered.refused.after == not_administered.refused.before


def test_the_named_grant_is_enough_to_restore(not_administered: NotAdministered) -> None:
    assert not_administered.restored.returncode == 0, str(not_administered.restored)


# ------------------------------------------------------------------ attributes an admin may not grant
@dataclass(frozen=True)
class Privileged:
    run: cli.Run
    report: dict[str, Any]
    roles: SeedRoles
    attributes: dict[str, tuple[bool, bool]]


@pytest.fixture(scope="module", params=[15, 17], ids=["pg15", "pg17"])
def privileged(request: pytest.FixtureRequest, matrix: Matrix) -> Privileged:
    """A backup whose application role had BYPASSRLS and REPLICATION, restored by the admin
    into a cluster without it: created without them, one warning per role and attribute."""
    major = request.param
    roles = SeedRoles.suffixed(postgres.unique_name("pv").split("_", 1)[1])
    source_cluster = matrix.source_cluster(major)
    database = postgres.seeded_database(source_cluster, "msrc_pv", SeedSpec(**{**SOURCE_SEED.__dict__, "roles": roles}))
    source_cluster.run_sql(f'ALTER ROLE "{roles.app}" BYPASSRLS REPLICATION')
    backup = cli.take_backup(matrix.s3, matrix.new_bucket(), database.url)
    cluster = matrix.target(major)
    target = matrix.create_database(major, "admin", "mpv")
    report_path = matrix.tmp_root / f"{postgres.unique_name('pv-report')}.json"
    run = cli.restore(cli.job_env(matrix.s3.endpoint_url, backup.bucket), backup.uri,
                      matrix.url(major, "admin", target), "--create-missing-roles", "--report", str(report_path))
    rows = cluster.run_sql("SELECT rolname, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = %s",
                           params=[roles.app])
    return Privileged(run, json.loads(report_path.read_text()), roles, {r[0]: (r[1], r[2]) for r in rows})


def test_privileged_role_still_restores(privileged: Privileged) -> None:
    assert (privileged.run.returncode, privileged.report["status"]) == (0, "verified"), str(privileged.run)


def test_role_is_created_without_the_attributes(privileged: Privileged) -> None:
    assert privileged.attributes == {privileged.roles.app: (False, False)}


def test_report_lists_the_dropped_attributes(privileged: Privileged) -> None:
    assert privileged.report["roles_attributes_dropped"] == {privileged.roles.app: ["REPLICATION", "BYPASSRLS"]}


def test_one_warning_per_role_and_attribute(privileged: Privileged) -> None:
    warnings = [(r["role"], r["attribute"]) for r in privileged.run.log
                if r["level"] == "warning" and "attribute" in r]
    assert warnings == [(privileged.roles.app, "REPLICATION"), (privileged.roles.app, "BYPASSRLS")]


# ------------------------------------------------------------------ upstream agent-bom's own layout
@dataclass(frozen=True)
class Upstream:
    outcome: Outcome
    roles: SeedRoles
    owner: str  # the restored database's owner


@pytest.fixture(scope="module", params=MAJORS, ids=[f"pg{m}" for m in MAJORS])
def upstream(request: pytest.FixtureRequest, matrix: Matrix) -> Upstream:
    """Upstream's layout: the application role owns the source database and its tables in
    ``public``; the target database is created (so owned) by the managed admin, and the
    target lacks the roles. Refused before (issue 26: "owner ... has no CREATE on schema
    public"): the restore gives the database its recorded owner, and so ``public``."""
    major = request.param
    roles = SeedRoles.suffixed(postgres.unique_name(f"up{major}").split("_", 1)[1])
    source_cluster = matrix.source_cluster(major)
    with psycopg.connect(source_cluster.admin_conninfo, autocommit=True) as conn:
        create_roles(conn, roles)
    name = postgres.unique_name(f"msrc_up{major}")
    source_cluster.create_database(name, owner=roles.owner)
    with postgres.connect(source_cluster, name) as conn:
        seed(conn, SeedSpec(**{**SOURCE_SEED.__dict__, "roles": roles}))
        # upstream's migrations need no grant on public: its owner is the database's
        conn.execute(sql.SQL("REVOKE CREATE, USAGE ON SCHEMA public FROM {}").format(sql.Identifier(roles.owner)))
    backup = cli.take_backup(matrix.s3, matrix.new_bucket(), source_cluster.superuser_url(name))
    cluster = matrix.target(major)
    target = matrix.create_database(major, "admin", "mup")
    report_path = matrix.tmp_root / f"{postgres.unique_name('up-report')}.json"
    before = helpers.database_state(cluster, target)
    run = cli.restore(cli.job_env(matrix.s3.endpoint_url, backup.bucket), backup.uri,
                      matrix.url(major, "admin", target), "--create-missing-roles", "--report", str(report_path))
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    restored = fidelity(cluster, target) if run.returncode == 0 else None
    outcome = Outcome(run, report, target, before, helpers.database_state(cluster, target), restored,
                      fidelity(source_cluster, name), [])
    owner = cluster.run_sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", params=[target])
    return Upstream(outcome, roles, owner[0][0])


def test_upstream_layout_restores_verified_as_the_managed_admin(upstream: Upstream) -> None:
    outcome = upstream.outcome
    assert (outcome.run.returncode, outcome.report.get("status")) == (0, "verified"), str(outcome.run)


@pytest.mark.parametrize("part", ["rows", "tenants", "policies", "owners", "row_security", "grants"])
def test_upstream_layout_part_matches_the_source(upstream: Upstream, part: str) -> None:
    assert upstream.outcome.restored is not None, str(upstream.outcome.run)
    assert upstream.outcome.restored[part] == upstream.outcome.source[part]


def test_upstream_layout_database_gets_the_application_role_as_owner(upstream: Upstream) -> None:
    assert upstream.owner == upstream.roles.owner

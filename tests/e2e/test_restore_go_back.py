"""Going back works for the role that restored: a managed-style admin (``LOGIN CREATEDB
CREATEROLE``, not a superuser) replaces its database with ``--clean`` and the safety
backup in the bucket; the restore fails after the wipe (the manifest claims one row more
than the dump holds); the go-back the report names — a restore of the safety backup with
``--clean``, as the same admin — brings the target back exactly: schemas, tables, owners,
grants and rows, nothing of the failed restore left (a digest before and after)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec, seed
from tests.reliability import harness
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

PASSWORD = "go-back-admin-pw"


def digest(cluster: PgCluster, database: str) -> str:
    """harness.database_digest (relations, rows, policies, roles) plus owners and grants."""
    with postgres.connect(cluster, database) as conn:
        owners = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2").fetchall()
        schemas = conn.execute("SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace "
                               "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1").fetchall()
        grants = conn.execute("SELECT table_schema, table_name, grantee, privilege_type FROM "
                              "information_schema.table_privileges WHERE table_schema NOT IN "
                              "('pg_catalog', 'information_schema') ORDER BY 1, 2, 3, 4").fetchall()
    return hashlib.sha256(repr((harness.database_digest(cluster, database), owners, schemas, grants)).encode()
                          ).hexdigest()


@dataclass(frozen=True)
class WentBack:
    before: str
    failed: cli.Run
    report: dict[str, Any]
    go_back: cli.Run
    after: str


@pytest.fixture(scope="module", params=["plain", "force-rls"])
def went_back(request: pytest.FixtureRequest, s3: MotoServer, pg15: PgCluster, backup15: cli.Backup) -> WentBack:
    """``plain``: the admin's own tables and grants. ``force-rls``: the seeded control plane
    (FORCE-RLS tables owned by the application role, policies, grants), which the admin
    without BYPASSRLS must back up completely before the wipe."""
    admin, reader = postgres.unique_name("abb_gb_admin"), postgres.unique_name("abb_gb_reader")
    pg15.run_sql(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
        sql.Identifier(admin), sql.Literal(PASSWORD)).as_string(None))
    database = postgres.unique_name("gb_target")
    with psycopg.connect(pg15.url("postgres", admin, PASSWORD), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(reader)))
    with psycopg.connect(pg15.url(database, admin, PASSWORD), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.kept (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO app.kept SELECT g, 'row ' || g FROM generate_series(1, 25) g")
        conn.execute("CREATE TABLE public.items (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.items (name) VALUES ('a'), ('b')")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {0}; GRANT SELECT ON app.kept TO {0}").format(
            sql.Identifier(reader)))
    if request.param == "force-rls":
        with postgres.connect(pg15, database) as conn:
            seed(conn, SeedSpec(tenants=("team-other",), audit_rows_per_tenant=7))
    before = digest(pg15, database)
    url = pg15.url(database, admin, PASSWORD)
    with buckets.fresh_bucket(s3, "abb-goback") as bucket:
        helpers.copy_with_one_audit_row_too_many(s3, backup15, bucket)
        env = cli.job_env(s3.endpoint_url, bucket)
        report_path = Path(postgres.unique_name("/tmp/abb-goback-report") + ".json")
        failed = cli.restore(env, backup15.uri_in(bucket), url, "--clean", "--confirm-target", database,
                             "--create-missing-roles", "--safety-backup-to-bucket", "--approval", "INC-1",
                             "--report", str(report_path))
        report = json.loads(report_path.read_text())
        report_path.unlink()
        safety = report.get("safety_backup") or ""
        go_back = cli.restore(env, safety, url, "--clean", "--confirm-target", database, "--approval", "INC-1",
                              "--safety-backup-to-bucket")
        after = digest(pg15, database)
    return WentBack(before, failed, report, go_back, after)


def test_the_restore_failed_after_the_wipe(went_back: WentBack) -> None:
    assert went_back.failed.returncode == 11, str(went_back.failed)


def test_the_safety_backup_is_a_backup_in_the_bucket(went_back: WentBack) -> None:
    assert "/agent-bom/postgres/safety/agent-bom-" in went_back.report["safety_backup"]


def test_the_report_names_the_go_back_restore(went_back: WentBack) -> None:
    assert f"agent-bom-backup restore {went_back.report['safety_backup']} --clean" in went_back.report["recovery"]


def test_going_back_is_verified(went_back: WentBack) -> None:
    assert went_back.go_back.returncode == 0, str(went_back.go_back)


def test_going_back_brings_the_target_back_exactly(went_back: WentBack) -> None:
    assert went_back.after == went_back.before

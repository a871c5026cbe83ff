"""Row-level security: a backup role that RLS would filter must not silently drop tenants.
Without BYPASSRLS the backup fails clearly; with --enable-row-security and a session
setting the policies honour it sees every row; a setting that still filters fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from psycopg import sql

from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer

RLS_TABLES = ("api_keys", "audit_log", "scan_jobs")
PASSWORD = "backup-role-password"


@dataclass(frozen=True)
class RlsSource:
    cluster: PgCluster
    database: str
    role: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.database, self.role, PASSWORD)


@pytest.fixture(scope="module")
def rls_source(pg15: PgCluster) -> RlsSource:
    """The seeded schema plus a backup role without BYPASSRLS (it reads everything through
    pg_read_all_data) and a policy that lets it see all rows when ``app.bypass_rls = on``,
    or one tenant's rows when ``app.team_id`` names it."""
    database = postgres.seeded_database(pg15, "rls").name
    role = postgres.unique_name("abb_backup")
    statements = [
        sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(PASSWORD)),
        sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role)),
    ]
    statements += [
        sql.SQL("CREATE POLICY backup_bypass ON {} FOR SELECT TO {} USING ("
                "current_setting('app.bypass_rls', true) = 'on' OR team_id = current_setting('app.team_id', true))"
                ).format(sql.Identifier(table), sql.Identifier(role))
        for table in RLS_TABLES
    ]
    statements.append(sql.SQL("ANALYZE"))
    with postgres.connect(pg15, database) as conn:
        for statement in statements:
            conn.execute(statement)
    return RlsSource(pg15, database, role)


@dataclass(frozen=True)
class Attempt:
    run: cli.Run
    objects: list[str]
    uploads: list[dict]
    manifest: dict | None


def _attempt(s3: MotoServer, source: RlsSource, *args: str) -> Iterator[Attempt]:
    with buckets.fresh_bucket(s3, "abb-rls") as bucket:
        run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source.url), *args)
        manifest = None
        if run.returncode == 0:
            key = run.stdout.strip().removeprefix(f"s3://{bucket}/")
            manifest = json.loads(buckets.get_object(s3.client(), bucket, buckets.manifest_key(key)))
        # claims are not backups: a run that took its id and then failed leaves its claim
        keys = buckets.without_claims(buckets.object_keys(s3.client(), bucket))
        yield Attempt(run, keys, buckets.open_uploads(s3.client(), bucket), manifest)


@pytest.fixture(scope="module")
def filtered(s3: MotoServer, rls_source: RlsSource) -> Iterator[Attempt]:
    yield from _attempt(s3, rls_source)


@pytest.fixture(scope="module")
def bypassed(s3: MotoServer, rls_source: RlsSource) -> Iterator[Attempt]:
    yield from _attempt(s3, rls_source, "--enable-row-security", "--session-setting", "app.bypass_rls=on")


@pytest.fixture(scope="module")
def one_tenant(s3: MotoServer, rls_source: RlsSource) -> Iterator[Attempt]:
    yield from _attempt(s3, rls_source, "--enable-row-security", "--session-setting", "app.team_id=team-alpha")


@pytest.fixture(scope="module")
def one_tenant_after_stats_reset(s3: MotoServer, rls_source: RlsSource, one_tenant: Attempt) -> Iterator[Attempt]:
    """The same filtering bypass after the statistics were reset (as a crash does)."""
    rls_source.cluster.run_sql("SELECT pg_stat_reset()", rls_source.database)
    yield from _attempt(s3, rls_source, "--enable-row-security", "--session-setting", "app.team_id=team-alpha")


def test_filtered_role_fails_preflight(filtered: Attempt) -> None:
    assert filtered.run.returncode == 4, str(filtered.run)


def test_filtered_role_error_names_the_role_and_the_rls_tables(filtered: Attempt, rls_source: RlsSource) -> None:
    tables = ", ".join(f"public.{t}" for t in RLS_TABLES)
    assert [f"role {rls_source.role} would not see every tenant's rows: row-level security applies to {tables}"
            in e["message"] for e in filtered.run.errors] == [True], str(filtered.run)


def test_filtered_role_leaves_nothing(filtered: Attempt) -> None:
    assert (filtered.objects, filtered.uploads) == ([], [])


def test_bypass_setting_lets_the_backup_succeed(bypassed: Attempt) -> None:
    assert bypassed.run.returncode == 0, str(bypassed.run)


def test_bypass_backup_counts_every_row(bypassed: Attempt, rls_source: RlsSource) -> None:
    assert bypassed.manifest is not None
    counts = {f"{t['schema']}.{t['name']}": t["rows"] for t in bypassed.manifest["tables"]}
    assert counts == helpers.table_counts(rls_source.cluster, rls_source.database)


def test_bypass_backup_records_row_security(bypassed: Attempt) -> None:
    assert bypassed.manifest is not None and bypassed.manifest["client"]["row_security"] is True


def test_bypass_that_still_filters_fails(one_tenant: Attempt) -> None:
    assert (one_tenant.run.returncode, one_tenant.run.error_message.startswith(
        "row-level security hid rows from the backup")) == (7, True), str(one_tenant.run)


def test_bypass_that_still_filters_leaves_nothing(one_tenant: Attempt) -> None:
    assert (one_tenant.objects, one_tenant.uploads) == ([], [])


def test_bypass_that_still_filters_fails_after_a_statistics_reset(one_tenant_after_stats_reset: Attempt) -> None:
    run = one_tenant_after_stats_reset.run
    assert (run.returncode, run.error_message.startswith("row-level security hid rows from the backup")) == (7, True), \
        str(run)

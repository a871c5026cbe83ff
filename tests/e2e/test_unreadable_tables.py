"""Tables the backup role may not read (issue 25): refused before anything is written, with
one message naming each and the three ways out; or left out by --exclude-table, which
the manifest records and the restore reports (verified-with-exclusions).

The source is the seed plus relations the backup role may not SELECT, as upstream agent-bom
0.102's REVOKE does: a plain table, a table with a serial column in a schema and under a name
that need quoting (``"Vault"."Signing.Keys"``, whose owned sequence goes with it), and one
partition of a partitioned table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

PASSWORD = "unreadable-backup-password"
SECRET = "public.tenant_keys"
QUOTED = '"Vault"."Signing.Keys"'
PARTITION = "public.events_2027"
#: the chart's rendering of controlPlane.backup.dump.excludeTables (one name per line)
EXCLUDE_ENV = "\n".join([SECRET, QUOTED, PARTITION])


@dataclass(frozen=True)
class Source:
    database: postgres.Database
    role: str

    @property
    def url(self) -> str:
        return self.database.cluster.url(self.database.name, self.role, PASSWORD)


@pytest.fixture(scope="module")
def source(pg15: PgCluster) -> Source:
    database = postgres.seeded_database(pg15, "unreadable")
    role = postgres.unique_name("abb_least")
    statements = [
        "CREATE TABLE tenant_keys (key_id text PRIMARY KEY, key_material bytea NOT NULL)",
        "INSERT INTO tenant_keys VALUES ('k1', '\\x00')",
        'CREATE SCHEMA "Vault"',
        'CREATE TABLE "Vault"."Signing.Keys" (id serial PRIMARY KEY, secret text)',
        'INSERT INTO "Vault"."Signing.Keys" (secret) VALUES (\'s\')',
        "CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at)",
        "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        "CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')",
        "INSERT INTO events VALUES (1, '2026-05-01'), (2, '2027-05-01')",
    ]
    with postgres.connect(pg15, database.name) as conn:
        for statement in statements:
            conn.execute(statement)
        r = sql.Identifier(role)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS PASSWORD {}").format(r, sql.Literal(PASSWORD)))
        for schema in ("public", "Vault"):
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}; "
                                 "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}").format(
                s=sql.Identifier(schema), r=r))
        conn.execute(sql.SQL('REVOKE ALL ON tenant_keys, "Vault"."Signing.Keys", "Vault"."Signing.Keys_id_seq", '
                             "events_2027 FROM {}").format(r))
    return Source(database, role)


@dataclass(frozen=True)
class Attempt:
    run: cli.Run
    objects: list[str]
    uploads: list[dict]
    bucket: str


def _attempt(s3: MotoServer, source: Source, **env: str) -> Iterator[Attempt]:
    with buckets.fresh_bucket(s3, "abb-unread") as bucket:
        run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source.url, **env))
        yield Attempt(run, buckets.object_keys(s3.client(), bucket), buckets.open_uploads(s3.client(), bucket), bucket)


@pytest.fixture(scope="module")
def refused(s3: MotoServer, source: Source) -> Iterator[Attempt]:
    yield from _attempt(s3, source)


@pytest.fixture(scope="module")
def excluded(s3: MotoServer, source: Source) -> Iterator[Attempt]:
    yield from _attempt(s3, source, AGENT_BOM_BACKUP_EXCLUDE_TABLES=EXCLUDE_ENV)


def test_an_unreadable_table_refuses_the_backup_with_exit_8(refused: Attempt) -> None:
    assert refused.run.returncode == 8, str(refused.run)


def test_the_refusal_is_one_message_naming_each_object_its_owner_and_the_ways_out(
        refused: Attempt, source: Source) -> None:
    (error,) = refused.run.errors
    message = error["message"]
    for part in (f"role {source.role} may not read 4 objects",
                 "table public.tenant_keys (owner postgres)",
                 'table "Vault"."Signing.Keys" (owner postgres)',
                 'sequence "Vault"."Signing.Keys_id_seq" (owner postgres)',
                 "partition public.events_2027 (owner postgres)",
                 "back up as a role that may read it",
                 f"GRANT SELECT ON public.tenant_keys TO {source.role}",
                 "the backup then holds those secrets", "--encrypt-to", "SSE-KMS",
                 "--exclude-table public.tenant_keys"):
        assert part in message, (part, message)


def test_the_refusal_writes_nothing_and_starts_no_pg_dump(refused: Attempt) -> None:
    started = [r for r in refused.run.log if r.get("message") == "starting pg_dump"]
    assert (refused.objects, refused.uploads, started) == ([], [], [])


def test_excluded_tables_let_the_backup_succeed(excluded: Attempt) -> None:
    assert excluded.run.returncode == 0, str(excluded.run)


def test_the_manifest_records_what_was_left_out(excluded: Attempt, s3: MotoServer) -> None:
    manifest = buckets.read_manifest(s3.client(), excluded.bucket, excluded.run.uri.removeprefix(f"s3://{excluded.bucket}/"))
    tables = {f"{t['schema']}.{t['name']}" for t in manifest["tables"]}
    assert (manifest["excluded_tables"], tables & {"public.tenant_keys", "Vault.Signing.Keys", "public.events_2027"}) \
        == (['"Vault"."Signing.Keys"', '"Vault"."Signing.Keys_id_seq"', "public.events_2027", "public.tenant_keys"],
            set())


@pytest.fixture(scope="module")
def restored(excluded: Attempt, s3: MotoServer, pg15: PgCluster, tmp_path_factory) -> tuple[cli.Run, dict, str]:
    target = postgres.new_database(pg15, "unreadrestored")
    report_path: Path = tmp_path_factory.mktemp("unread") / "report.json"
    run = cli.restore(cli.job_env(s3.endpoint_url, excluded.bucket), excluded.run.uri, pg15.superuser_url(target),
                      "--report", str(report_path))
    return run, json.loads(report_path.read_text()), target


def test_the_restore_verifies_everything_else_and_says_so(restored) -> None:
    run, report, _ = restored
    assert (run.returncode, report["status"]) == (0, "verified-with-exclusions"), str(run)


def test_the_restore_summary_lists_the_tables_not_in_this_backup(restored) -> None:
    run, _, _ = restored
    assert "not in this backup, by configuration (--exclude-table):\n  - \"Vault\".\"Signing.Keys\"" in run.stdout, \
        run.stdout


def test_the_excluded_tables_are_absent_after_the_restore(restored, pg15: PgCluster) -> None:
    _, _, target = restored
    with postgres.connect(pg15, target) as conn:
        names = {f"{s}.{n}" for s, n, _ in postgres.user_relations(conn)}
    assert names & {"public.tenant_keys", "Vault.Signing.Keys", "public.events_2027"} == set()


def test_an_exclusion_naming_no_table_is_refused_with_exit_3(s3: MotoServer, source: Source) -> None:
    with buckets.fresh_bucket(s3, "abb-unread-typo") as bucket:
        run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source.url), "--exclude-table", "public.tenant_kyes")
        assert (run.returncode, run.error_message.startswith(
            "--exclude-table names no table in this database: public.tenant_kyes")) == (3, True), str(run)
        assert buckets.object_keys(s3.client(), bucket) == []


def test_verify_deep_lists_the_tables_not_in_this_backup(excluded: Attempt, s3: MotoServer, pg15: PgCluster) -> None:
    run = cli.run_cli(["verify", excluded.run.uri, "--deep", "--scratch-url", pg15.superuser_url()],
                      cli.job_env(s3.endpoint_url, excluded.bucket))
    lines = run.stdout.splitlines()
    heading = lines.index("  not in this backup, by configuration (--exclude-table):") if \
        "  not in this backup, by configuration (--exclude-table):" in lines else -1
    assert (run.returncode, lines[heading + 1:heading + 5] if heading >= 0 else []) == (0, [
        '    - "Vault"."Signing.Keys"', '    - "Vault"."Signing.Keys_id_seq"', "    - public.events_2027",
        "    - public.tenant_keys"]), str(run)


def test_an_exclusion_that_a_view_reads_is_refused_with_exit_3(s3: MotoServer, source: Source, pg15: PgCluster) -> None:
    """The dump would keep the view and the restore fail on it after changing the target."""
    pg15.run_sql("CREATE VIEW key_ids AS SELECT key_id FROM tenant_keys", source.database.name)
    try:
        with buckets.fresh_bucket(s3, "abb-unread-view") as bucket:
            run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source.url), "--exclude-table", SECRET)
            assert (run.returncode, run.error_message.startswith(
                "--exclude-table would leave out a table that the backup still needs: view public.key_ids "
                "(reads public.tenant_keys)")) == (3, True), str(run)
    finally:
        pg15.run_sql("DROP VIEW key_ids", source.database.name)

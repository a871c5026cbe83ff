"""A backup under --enable-row-security proves it saw every row, or fails (issue 26, item 2).

One table of 1,000 rows with FORCE ROW LEVEL SECURITY and a backup role without BYPASSRLS:
a policy that still hides 50 rows under the bypass setting fails the backup (exit 7, no
manifest, the upload aborted) -- the former 10 % + 10 rows tolerance let it pass -- and
the policy that shows every row passes while a writer inserts and deletes rows throughout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

PASSWORD = "completeness-role-password"
ROWS = 1000
HIDDEN = 50


@dataclass(frozen=True)
class Source:
    cluster: PgCluster
    database: str
    role: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.database, self.role, PASSWORD)


def _source(cluster: PgCluster, prefix: str, visible: str) -> Source:
    """``events`` (1,000 rows, RLS forced) readable by a new role through a policy that
    admits the rows matching ``visible`` under ``app.bypass_rls = on``."""
    database = postgres.new_database(cluster, prefix)
    role = postgres.unique_name("abb_rls")
    r = sql.Identifier(role)
    with postgres.connect(cluster, database) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOBYPASSRLS PASSWORD {}").format(r, sql.Literal(PASSWORD)))
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, team_id text NOT NULL)")
        conn.execute(f"INSERT INTO events (team_id) SELECT 'team-' || (g % 3) FROM generate_series(1, {ROWS}) g")
        conn.execute("ALTER TABLE events ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE events FORCE ROW LEVEL SECURITY")
        conn.execute(sql.SQL("GRANT SELECT ON events TO {r}; GRANT SELECT ON SEQUENCE events_id_seq TO {r}").format(r=r))
        conn.execute(sql.SQL("CREATE POLICY backup_sees ON events FOR SELECT TO {} USING "
                             "(current_setting('app.bypass_rls', true) = 'on' AND {})").format(r, sql.SQL(visible)))
    return Source(cluster, database, role)


@dataclass(frozen=True)
class Attempt:
    run: cli.Run
    objects: list[str]
    uploads: list[dict]


def _backup(s3: MotoServer, source: Source) -> Iterator[Attempt]:
    with buckets.fresh_bucket(s3, "abb-complete") as bucket:
        run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source.url), "--enable-row-security",
                         "--session-setting", "app.bypass_rls=on")
        yield Attempt(run, buckets.without_claims(buckets.object_keys(s3.client(), bucket)),
                      buckets.open_uploads(s3.client(), bucket))


@pytest.fixture(scope="module")
def hiding(s3: MotoServer, pg15: PgCluster) -> Iterator[Attempt]:
    yield from _backup(s3, _source(pg15, "rlshide", f"id % {ROWS // HIDDEN} <> 0"))


def test_policies_hiding_50_of_1000_rows_fail_the_backup_with_exit_7(hiding: Attempt) -> None:
    assert hiding.run.returncode == 7, str(hiding.run)


def test_the_failure_names_the_table_and_the_rows_seen(hiding: Attempt) -> None:
    assert hiding.run.error_message.startswith(
        f"row-level security hid rows from the backup (no manifest written, upload aborted): "
        f"public.events ({ROWS - HIDDEN} rows seen, {ROWS} live)"), str(hiding.run)


def test_hidden_rows_leave_no_manifest_and_no_upload(hiding: Attempt) -> None:
    assert (hiding.objects, hiding.uploads) == ([], [])


class Writer(threading.Thread):
    """Inserts and deletes rows of ``events`` in autocommit until stopped."""

    def __init__(self, cluster: PgCluster, database: str) -> None:
        super().__init__(name="writer", daemon=True)
        self.conninfo = cluster.conninfo(database)
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self.stop.is_set():
                conn.execute("INSERT INTO events (team_id) VALUES ('team-w')")
                conn.execute("DELETE FROM events WHERE id = (SELECT min(id) FROM events)")
                self.written += 2


@pytest.fixture(scope="module")
def under_writes(s3: MotoServer, pg15: PgCluster) -> Iterator[tuple[Attempt, int]]:
    source = _source(pg15, "rlswrite", "true")
    writer = Writer(pg15, source.database)
    writer.start()
    try:
        attempt = next(_backup(s3, source))
    finally:
        writer.stop.set()
        writer.join()
    yield attempt, writer.written


def test_a_table_seen_in_full_passes_under_concurrent_writes(under_writes: tuple[Attempt, int]) -> None:
    attempt, written = under_writes
    assert (attempt.run.returncode, written > 0) == (0, True), str(attempt.run)

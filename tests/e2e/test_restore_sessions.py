"""A quiet target for the whole change: a real writer inserts a row every ~0.05 s into the
target while a ``--clean`` restore replaces it.

Without ``--terminate-sessions`` the restore refuses (exit 8, nothing changed) and names
the writer. With it, CONNECT is revoked and the writer's session ended before the safety
dump, so every row the writer committed before the restore returned is in the safety
dump or in the target, on success and on a failure after the wipe; the database's ACL
is what it was afterwards."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

WRITER_PASSWORD = "writer-pw-4d1c"
INTERVAL_S = 0.05


@dataclass
class Writer:
    """Inserts 1, 2, 3 ... into writer_log, one row a commit, reconnecting after any error;
    ``committed`` holds the values whose COMMIT returned."""

    url: str
    committed: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: int = 0

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        value = 0
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, application_name="abb-test-writer",
                                           connect_timeout=2)
                conn.execute("INSERT INTO writer_log VALUES (%s)", [value + 1])
                value += 1
                self.committed.append(value)
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(INTERVAL_S)
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class Busy:
    database: str
    writer_role: str


def busy_target(pg15: PgCluster) -> Busy:
    target = postgres.seeded_database(pg15, "busy", postgres.SMALL_SEED).name
    role = postgres.unique_name("abb_writer")
    pg15.run_sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(WRITER_PASSWORD)).as_string(None))
    pg15.run_sql(sql.SQL("CREATE TABLE writer_log (value int); GRANT INSERT ON writer_log TO {}").format(
        sql.Identifier(role)).as_string(None), target)
    return Busy(target, role)


@contextlib.contextmanager
def writing(pg15: PgCluster) -> Iterator[tuple[Busy, Writer]]:
    """A new busy target with its writer writing; the writer stops on leaving."""
    busy = busy_target(pg15)
    writer = Writer(pg15.url(busy.database, busy.writer_role, WRITER_PASSWORD))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while len(writer.committed) < 5:
        assert time.monotonic() < deadline, "the writer did not start writing"
        time.sleep(INTERVAL_S)
    try:
        yield busy, writer
    finally:
        writer.stop.set()
        thread.join()


def database_acl(pg15: PgCluster, database: str) -> list[str]:
    """The database's ACL entries, the default ones spelled out (NULL and its equal are the same)."""
    with postgres.connect(pg15, "postgres") as conn:
        row = conn.execute("SELECT array_agg(a::text ORDER BY a::text) FROM pg_database d, "
                           "unnest(COALESCE(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = %s",
                           [database]).fetchone()
        return list(row[0]) if row and row[0] else []


def rows_in_archive(archive: Path) -> set[int]:
    text = subprocess.run([str(tools.pg_bin_dir(15) / "pg_restore"), "--data-only", "--table=writer_log", "-f", "-",
                           str(archive)], capture_output=True, text=True, check=True, timeout=60).stdout
    body = text.split("COPY public.writer_log", 1)[1].split("\n", 1)[1].split("\\.", 1)[0] if "COPY" in text else ""
    return {int(line) for line in body.splitlines() if line.strip()}


def rows_in_target(pg15: PgCluster, database: str) -> set[int]:
    with postgres.connect(pg15, database) as conn:
        if conn.execute("SELECT to_regclass('public.writer_log')").fetchone()[0] is None:  # type: ignore[index]
            return set()
        return {int(r[0]) for r in conn.execute("SELECT value FROM writer_log").fetchall()}


@dataclass(frozen=True)
class Outcome:
    run: cli.Run
    report: dict[str, Any]
    committed_before_return: set[int]
    in_safety_dump: set[int]
    in_target: set[int]
    acl_before: list[str]
    acl_after: list[str]


def restore_while_writing(pg15: PgCluster, busy: Busy, writer: Writer, env: dict[str, str], uri: str,
                          work: Path, *args: str) -> Outcome:
    acl_before = database_acl(pg15, busy.database)
    report = work / "report.json"
    run = cli.restore(env, uri, pg15.superuser_url(busy.database), "--clean", "--confirm-target", busy.database,
                      "--safety-backup-dir", str(work / "safety"), "--report", str(report), *args)
    committed = set(writer.committed)
    writer.stop.set()
    recorded = json.loads(report.read_text())
    safety = rows_in_archive(Path(recorded["safety_backup"])) if recorded.get("safety_backup") else set()
    return Outcome(run, recorded, committed, safety, rows_in_target(pg15, busy.database), acl_before,
                   database_acl(pg15, busy.database))


# ------------------------------------------------------------------ without --terminate-sessions
@pytest.fixture(scope="module")
def refused(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> tuple[Busy, Outcome]:
    """One refused restore, read by every test below (each asserts one thing about it)."""
    work = tmp_root / postgres.unique_name("sessions")
    work.mkdir()
    with writing(pg15) as (busy, writer):
        return busy, restore_while_writing(pg15, busy, writer, cli.job_env(s3.endpoint_url, backup15.bucket),
                                           backup15.uri, work)


def test_a_writer_on_the_target_is_refused_by_name(refused: tuple[Busy, Outcome]) -> None:
    busy, outcome = refused
    assert (outcome.run.returncode, busy.writer_role in outcome.run.error_message,
            "abb-test-writer" in outcome.run.error_message) == (8, True, True), str(outcome.run)


def test_the_refusal_changed_nothing(refused: tuple[Busy, Outcome]) -> None:
    _, outcome = refused
    assert (outcome.report["target_changed"], outcome.report["safety_backup"], outcome.acl_after) == (
        False, None, outcome.acl_before)


def test_the_refusal_lost_no_row(refused: tuple[Busy, Outcome]) -> None:
    _, outcome = refused
    assert outcome.committed_before_return - outcome.in_target == set()


# ------------------------------------------------------------------ with --terminate-sessions
@pytest.fixture(scope="module")
def terminated(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> Outcome:
    """One restore with --terminate-sessions, read by every test below."""
    work = tmp_root / postgres.unique_name("sessions")
    work.mkdir()
    with writing(pg15) as (busy, writer):
        return restore_while_writing(pg15, busy, writer, cli.job_env(s3.endpoint_url, backup15.bucket),
                                     backup15.uri, work, "--terminate-sessions")


def test_terminate_sessions_restores_and_verifies(terminated: Outcome) -> None:
    assert (terminated.run.returncode, terminated.report["status"]) == (0, "verified"), str(terminated.run)


def test_terminate_sessions_names_the_ended_session(terminated: Outcome) -> None:
    assert any("abb-test-writer" in s for s in terminated.report["sessions_ended"])


def test_every_committed_row_is_in_the_safety_dump_or_the_target(terminated: Outcome) -> None:
    missing = terminated.committed_before_return - terminated.in_safety_dump - terminated.in_target
    assert (missing, len(terminated.committed_before_return) >= 5) == (set(), True)


def test_connect_is_granted_back_after_the_restore(terminated: Outcome) -> None:
    assert terminated.acl_after == terminated.acl_before


# ------------------------------------------------------------------ a failure after the wipe
@pytest.fixture(scope="module")
def failed_after_wipe(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> Iterator[Outcome]:
    """The manifest claims one audit row more than the dump holds: verification fails after
    the wipe and pg_restore (exit 11). One such restore, read by every test below."""
    work = tmp_root / postgres.unique_name("sessions")
    work.mkdir()
    with writing(pg15) as (busy, writer), buckets.fresh_bucket(s3, "abb-writer") as bucket:
        helpers.copy_with_one_audit_row_too_many(s3, backup15, bucket)
        yield restore_while_writing(pg15, busy, writer, cli.job_env(s3.endpoint_url, bucket),
                                    backup15.uri_in(bucket), work, "--terminate-sessions")


def test_failure_after_the_wipe_exits_11(failed_after_wipe: Outcome) -> None:
    assert failed_after_wipe.run.returncode == 11, str(failed_after_wipe.run)


def test_failure_after_the_wipe_lost_no_committed_row(failed_after_wipe: Outcome) -> None:
    outcome = failed_after_wipe
    assert outcome.committed_before_return - outcome.in_safety_dump - outcome.in_target == set()


def test_failure_after_the_wipe_grants_connect_back(failed_after_wipe: Outcome) -> None:
    assert failed_after_wipe.acl_after == failed_after_wipe.acl_before

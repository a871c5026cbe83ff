"""Client versions: the backup uses the pg_dump of the server's major; a newer pg_restore
restoring into an older server tolerates exactly pg_restore 17+'s ``SET transaction_timeout``
and nothing else: not another error, not a signal, also when parallel workers interleave."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_bom_backup.restore import judge_pg_restore
from devstack import tools
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer

TT_ERROR = 'could not execute query: ERROR:  unrecognized configuration parameter "transaction_timeout"'


def _only_18(*extra: str) -> tuple[str, ...]:
    return ("--pg-bin-dir", str(tools.pg_bin_dir(18)), "--only-pg-bin-dirs", *extra)


@pytest.mark.parametrize(("backup", "major"), [("backup15", 15), ("backup18", 18)])
def test_backup_uses_the_pg_dump_of_the_server_major(request: pytest.FixtureRequest, backup: str, major: int) -> None:
    manifest = request.getfixturevalue(backup).manifest
    assert (manifest["client"]["pg_dump_major"], manifest["source"]["server_major"]) == (major, major)


def test_backup_with_only_a_newer_pg_dump_uses_it(s3: MotoServer, new_bucket: Callable[[], str],
                                                  pg15: PgCluster) -> None:
    name = postgres.new_database(pg15, "newer")
    pg15.run_sql("CREATE TABLE t AS SELECT 1 AS id", name)
    backup = cli.take_backup(s3, new_bucket(), pg15.superuser_url(name), *_only_18())
    assert backup.manifest["client"]["pg_dump_major"] == 18


def test_backup_with_only_an_older_pg_dump_is_refused(s3: MotoServer, new_bucket: Callable[[], str],
                                                      pg18: PgCluster) -> None:
    env = cli.job_env(s3.endpoint_url, new_bucket(), pg18.superuser_url("postgres"))
    run = cli.backup(env, "--pg-bin-dir", str(tools.pg_bin_dir(15)), "--only-pg-bin-dirs")
    assert (run.returncode, run.error_message.startswith("no pg_dump can dump a PostgreSQL 18 server")) == (4, True), \
        str(run)


# ------------------------------------------------------------------ pg_restore 18 into PostgreSQL 15
@dataclass(frozen=True)
class NewerRestore:
    run: cli.Run
    report: dict[str, Any]


@pytest.fixture(scope="module")
def newer_restore(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup, tmp_root: Path) -> NewerRestore:
    target = postgres.new_database(pg15, "target")
    report = tmp_root / postgres.unique_name("report")
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15.superuser_url(target),
                          *_only_18("--report", str(report)))
    return NewerRestore(run, json.loads(report.read_text()))


def test_pg_restore_18_into_15_succeeds(newer_restore: NewerRestore) -> None:
    assert (newer_restore.run.returncode, newer_restore.report["status"]) == (0, "verified"), str(newer_restore.run)


def test_pg_restore_18_into_15_is_reported(newer_restore: NewerRestore) -> None:
    assert newer_restore.report["pg_restore_version"].startswith("18.")


def test_pg_restore_18_into_15_notes_the_tolerated_statement(newer_restore: NewerRestore) -> None:
    notes = newer_restore.report["tolerated_errors"]
    assert len(notes) == 1 and 'unrecognized configuration parameter "transaction_timeout"' in notes[0]


def test_pg_restore_18_into_15_shows_the_note_in_the_summary(newer_restore: NewerRestore) -> None:
    assert any(line.startswith("tolerated:") and "transaction_timeout" in line
               for line in newer_restore.run.stdout.splitlines())


def _conflicting_database(pg15: PgCluster) -> str:
    """A database holding a composite type named like a table of the backup: pg_restore
    (run directly, without the CLI's emptiness check) fails creating that table."""
    name = postgres.new_database(pg15, "conflict")
    pg15.run_sql("CREATE TYPE public.teams AS (x int)", name)
    return name


def test_leftover_types_make_a_target_non_empty(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup) -> None:
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri,
                          pg15.superuser_url(_conflicting_database(pg15)), *_only_18())
    assert (run.returncode, "public.teams" in run.error_message) == (8, True), str(run)


@pytest.fixture(scope="module")
def inconsistent_backup(s3: MotoServer, new_bucket: Callable[[], str], pg15: PgCluster) -> cli.Backup:
    """A PostgreSQL 15 database whose rows violate a foreign key (inserted with
    session_replication_role = replica, as a faulty replication or a manual fix would):
    a faithful dump of it restores with one real error, when pg_restore adds the key."""
    name = postgres.new_database(pg15, "inconsistent")
    pg15.run_sql("CREATE TABLE parents (id int PRIMARY KEY); CREATE TABLE children (id int PRIMARY KEY, "
                 "parent int REFERENCES parents(id)); INSERT INTO parents SELECT g FROM generate_series(1, 20) g; "
                 "SET session_replication_role = replica; INSERT INTO children VALUES (1, 1), (2, 999)", name)
    return cli.take_backup(s3, new_bucket(), pg15.superuser_url(name))


@pytest.fixture(scope="module")
def fk_failure(s3: MotoServer, pg15: PgCluster, inconsistent_backup: cli.Backup, tmp_root: Path) -> NewerRestore:
    """pg_restore 18 --jobs=2 into PostgreSQL 15: transaction_timeout errors on every
    connection, and the foreign-key error in a parallel worker."""
    report = tmp_root / postgres.unique_name("report")
    run = cli.restore(cli.job_env(s3.endpoint_url, inconsistent_backup.bucket), inconsistent_backup.uri,
                      pg15.superuser_url(postgres.new_database(pg15, "target")), *_only_18("--jobs", "2", "--report", str(report)))
    return NewerRestore(run, json.loads(report.read_text()))


def test_other_pg_restore_errors_fail_the_restore_after_changes(fk_failure: NewerRestore) -> None:
    assert fk_failure.run.returncode == 11, str(fk_failure.run)


def test_other_pg_restore_error_is_named(fk_failure: NewerRestore) -> None:
    assert "violates foreign key constraint" in fk_failure.run.error_message, str(fk_failure.run)


def test_other_pg_restore_error_is_not_hidden_by_the_tolerated_ones(fk_failure: NewerRestore) -> None:
    assert "transaction_timeout" not in fk_failure.run.error_message, str(fk_failure.run)


def test_other_pg_restore_error_is_reported_as_failed_after_changes(fk_failure: NewerRestore) -> None:
    assert (fk_failure.report["status"], fk_failure.report["failed_step"]) == ("failed-after-changes", "restore")


# ------------------------------------------------------------------ the stderr classifier on real output
@pytest.fixture(scope="module")
def archive18_of_15(s3: MotoServer, backup15: cli.Backup, tmp_root: Path) -> Path:
    path = tmp_root / postgres.unique_name("archive")
    path.write_bytes(buckets.get_object(s3.client(), backup15.bucket, backup15.key))
    return path


def _pg_restore_18_stderr(pg15: PgCluster, archive: Path, target: str) -> str:
    result = subprocess.run([str(tools.pg_bin_dir(18) / "pg_restore"), "--jobs=2", "--dbname", pg15.conninfo(target),
                             str(archive)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def clean_stderr(pg15: PgCluster, archive18_of_15: Path) -> str:
    """pg_restore 18 --jobs=2 into an empty PostgreSQL 15 database: only the
    transaction_timeout errors, one per connection, with interleaved lines."""
    return _pg_restore_18_stderr(pg15, archive18_of_15, postgres.new_database(pg15, "captured"))


@pytest.fixture(scope="module")
def conflict_stderr(pg15: PgCluster, archive18_of_15: Path) -> str:
    return _pg_restore_18_stderr(pg15, archive18_of_15, _conflicting_database(pg15))


@pytest.fixture(scope="module")
def worker_error_stderr(s3: MotoServer, pg15: PgCluster, inconsistent_backup: cli.Backup, tmp_root: Path) -> str:
    """The foreign-key error raised in a parallel worker, among the transaction_timeout errors."""
    archive = tmp_root / postgres.unique_name("inconsistent")
    archive.write_bytes(buckets.get_object(s3.client(), inconsistent_backup.bucket, inconsistent_backup.key))
    return _pg_restore_18_stderr(pg15, archive, postgres.new_database(pg15, "captured"))


def _statements(stderr: str) -> int:
    return stderr.count("Command was: SET transaction_timeout = 0;")


def test_judge_tolerates_each_transaction_timeout_error(clean_stderr: str) -> None:
    outcome = judge_pg_restore(1, clean_stderr, tolerate_transaction_timeout=True)
    assert (outcome.errors, outcome.tolerated) == ([], _statements(clean_stderr))


def test_judge_sees_one_transaction_timeout_error_per_connection(clean_stderr: str) -> None:
    assert _statements(clean_stderr) >= 3  # the leader and two workers


def test_judge_tolerates_nothing_when_not_asked(clean_stderr: str) -> None:
    outcome = judge_pg_restore(1, clean_stderr, tolerate_transaction_timeout=False)
    assert (len(outcome.errors), outcome.tolerated) == (_statements(clean_stderr), 0)


def test_judge_keeps_every_other_error(conflict_stderr: str) -> None:
    errors = judge_pg_restore(1, conflict_stderr, tolerate_transaction_timeout=True).errors
    assert errors[0] == 'could not execute query: ERROR:  relation "teams" already exists' and TT_ERROR not in errors


def test_judge_finds_the_error_of_a_parallel_worker(worker_error_stderr: str) -> None:
    errors = judge_pg_restore(1, worker_error_stderr, tolerate_transaction_timeout=True).errors
    assert [e for e in errors if "violates foreign key constraint" in e] == errors and len(errors) == 1, \
        worker_error_stderr


def test_judge_fails_a_signal_whatever_was_tolerated(clean_stderr: str) -> None:
    outcome = judge_pg_restore(-9, clean_stderr, tolerate_transaction_timeout=True)
    assert outcome.errors[:1] == ["pg_restore was killed by signal 9"]


def test_judge_fails_an_unexpected_exit_code(clean_stderr: str) -> None:
    assert judge_pg_restore(2, clean_stderr, tolerate_transaction_timeout=True).errors != []


def test_judge_treats_transaction_timeout_from_another_statement_as_real(clean_stderr: str) -> None:
    other = (f"pg_restore: error: {TT_ERROR}\n"
             "Command was: CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql "
             "SET transaction_timeout TO '1s' AS 'SELECT 1';\n")
    outcome = judge_pg_restore(1, clean_stderr + other, tolerate_transaction_timeout=True)
    assert (len(outcome.errors), outcome.tolerated) == (clean_stderr.count(TT_ERROR) + 1, 0)


TT_BLOCK = f"{TT_ERROR}\nCommand was: SET transaction_timeout = 0;\n"


def _interleaved(first: str, second: str) -> str:
    """Two processes' error reports as they reach a shared stderr: pg_restore writes
    "pg_restore:", " ", "error: " and the message (with its "Command was:") as four
    writes, so two workers' writes can alternate, never cut one another."""
    pieces = zip(("pg_restore:", " ", "error: ", first), ("pg_restore:", " ", "error: ", second))
    return "".join(a + b for a, b in pieces)


def test_judge_survives_interleaved_writes(clean_stderr: str) -> None:
    outcome = judge_pg_restore(1, clean_stderr + _interleaved(TT_BLOCK, TT_BLOCK), tolerate_transaction_timeout=True)
    assert (outcome.errors, outcome.tolerated) == ([], clean_stderr.count(TT_ERROR) + 2)


def test_judge_counts_a_real_error_interleaved_with_a_tolerated_one(clean_stderr: str) -> None:
    real = 'could not execute query: ERROR:  relation "x" already exists\nCommand was: CREATE TABLE x ();\n'
    outcome = judge_pg_restore(1, clean_stderr + _interleaved(TT_BLOCK, real), tolerate_transaction_timeout=True)
    assert len(outcome.errors) == 1, outcome

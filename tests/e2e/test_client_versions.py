"""Client versions: the backup uses the pg_dump of the server's major; a newer pg_restore
restoring into an older server tolerates exactly pg_restore 17+'s ``SET transaction_timeout``
and nothing else."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_bom_backup.restore import classify_pg_restore_errors
from devstack import tools
from tests.support import cli
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
    name = cli.new_database(pg15, "newer")
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
    target = cli.new_database(pg15, "target")
    report = tmp_root / cli.unique_name("report")
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
    name = cli.new_database(pg15, "conflict")
    pg15.run_sql("CREATE TYPE public.teams AS (x int)", name)
    return name


def test_leftover_types_make_a_target_non_empty(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup) -> None:
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri,
                          pg15.superuser_url(_conflicting_database(pg15)), *_only_18())
    assert (run.returncode, "public.teams" in run.error_message) == (8, True), str(run)


def _restore_as_database_owner(pg15: PgCluster) -> tuple[str, str]:
    """An empty database owned by a role that is neither superuser nor a member of the
    backup's owner role: pg_restore creates the tables, then fails on ALTER ... OWNER TO."""
    role = cli.unique_name("owner")
    pg15.run_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'owner-pass'")
    name = cli.unique_name("owned")
    pg15.create_database(name, owner=role)
    return name, pg15.url(name, role, "owner-pass")


def test_other_pg_restore_errors_fail_the_restore(s3: MotoServer, pg15: PgCluster, backup15: cli.Backup) -> None:
    _, url = _restore_as_database_owner(pg15)
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, url, *_only_18())
    assert (run.returncode, "pg_restore reported" in run.error_message,
            "transaction_timeout" in run.error_message) == (9, True, False), str(run)


# ------------------------------------------------------------------ the stderr classifier on real output
@pytest.fixture(scope="module")
def archive18_of_15(s3: MotoServer, backup15: cli.Backup, tmp_root: Path) -> Path:
    path = tmp_root / cli.unique_name("archive")
    path.write_bytes(cli.get_object(s3.client(), backup15.bucket, backup15.key))
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
    return _pg_restore_18_stderr(pg15, archive18_of_15, cli.new_database(pg15, "captured"))


@pytest.fixture(scope="module")
def conflict_stderr(pg15: PgCluster, archive18_of_15: Path) -> str:
    return _pg_restore_18_stderr(pg15, archive18_of_15, _conflicting_database(pg15))


def test_classifier_tolerates_each_transaction_timeout_error(clean_stderr: str) -> None:
    real, tolerated = classify_pg_restore_errors(clean_stderr, tolerate_transaction_timeout=True)
    assert (real, tolerated) == ([], [TT_ERROR] * clean_stderr.count("Command was: SET transaction_timeout = 0;"))


def test_classifier_tolerates_nothing_when_not_asked(clean_stderr: str) -> None:
    real, tolerated = classify_pg_restore_errors(clean_stderr, tolerate_transaction_timeout=False)
    assert (len(real), tolerated) == (clean_stderr.count("Command was: SET transaction_timeout = 0;"), [])


def test_classifier_keeps_every_other_error(conflict_stderr: str) -> None:
    real, _ = classify_pg_restore_errors(conflict_stderr, tolerate_transaction_timeout=True)
    assert real[0] == 'could not execute query: ERROR:  relation "teams" already exists' and TT_ERROR not in real


def test_classifier_treats_transaction_timeout_from_another_statement_as_real(clean_stderr: str) -> None:
    other = (f"pg_restore: error: {TT_ERROR}\n"
             "Command was: CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql "
             "SET transaction_timeout TO '1s' AS 'SELECT 1';\n")
    real, tolerated = classify_pg_restore_errors(clean_stderr + other, tolerate_transaction_timeout=True)
    assert (len(real), tolerated) == (clean_stderr.count(TT_ERROR) + 1, [])


def test_classifier_survives_lines_cut_into_each_other(clean_stderr: str) -> None:
    # two workers' writes interleaved: one error line loses the end of its message
    whole = f"pg_restore: error: {TT_ERROR}"
    cut = clean_stderr.replace(
        whole,
        "pg_restore: error: could not execute query: pg_restore: processing item 1 TABLE x\n"
        'ERROR:  unrecognized configuration parameter "transaction_timeout"',
        1,
    )
    real, tolerated = classify_pg_restore_errors(cut, tolerate_transaction_timeout=True)
    assert (cut != clean_stderr, real, len(tolerated)) == (True, [], clean_stderr.count(TT_ERROR))

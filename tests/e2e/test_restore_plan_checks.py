"""The plan sees what would fail after the wipe.

* A backup with a table in a tablespace the target server lacks: ``--dry-run`` says the
  restore runs without tablespaces, and the ``--clean`` restore does so and is verified
  (before: the dry run passed silently, the real restore wiped the target, then failed
  on ``default_tablespace``, exit 11).
* A target holding only an empty schema of the backup's name is not empty: the restore
  without ``--clean`` refuses naming it, and ``--clean`` drops it and restores (before:
  "empty", then "schema already exists" after the changes, exit 11, and the same with
  ``--clean``)."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres


@dataclass(frozen=True)
class Spaced:
    backup: cli.Backup
    tablespace: str
    dry_run: cli.Run
    target: str
    run: cli.Run


@pytest.fixture(scope="module")
def spaced(s3: MotoServer, pg15: PgCluster, tmp_root: Path) -> Spaced:
    """A backup of a table in tablespace abb_ts_*, then the tablespace dropped from the
    server: restored with --clean over a non-empty database of the same server."""
    tablespace = postgres.unique_name("abb_ts")
    location = pg15.base_dir / tablespace
    location.mkdir()
    postgres_user = pwd.getpwnam("postgres")
    os.chown(location, postgres_user.pw_uid, postgres_user.pw_gid)
    pg15.run_sql(f"CREATE TABLESPACE {tablespace} LOCATION '{location}'")
    source = postgres.new_database(pg15, "spaced")
    pg15.run_sql(f"CREATE TABLE spaced (id int) TABLESPACE {tablespace}; "
                 "INSERT INTO spaced SELECT generate_series(1, 3)", source)
    with buckets.fresh_bucket(s3, "abb-ts") as bucket:
        backup = cli.take_backup(s3, bucket, pg15.superuser_url(source))
        pg15.run_sql(f'DROP DATABASE "{source}"')
        pg15.run_sql(f"DROP TABLESPACE {tablespace}")
        target = postgres.seeded_database(pg15, "ts_target", postgres.SMALL_SEED).name
        env = cli.job_env(s3.endpoint_url, bucket)
        common = ("--clean", "--confirm-target", target, "--safety-backup-dir", str(tmp_root / postgres.unique_name("s")))
        dry_run = cli.restore(env, backup.uri, pg15.superuser_url(target), *common, "--dry-run")
        run = cli.restore(env, backup.uri, pg15.superuser_url(target), *common)
    return Spaced(backup, tablespace, dry_run, target, run)


def test_dry_run_says_it_restores_without_the_missing_tablespace(spaced: Spaced) -> None:
    assert f"restore without tablespaces (--no-tablespaces): the target lacks {spaced.tablespace}" in \
        spaced.dry_run.stdout, str(spaced.dry_run)


def test_restore_without_the_missing_tablespace_is_verified(spaced: Spaced) -> None:
    assert spaced.run.returncode == 0, str(spaced.run)


def test_restore_without_the_missing_tablespace_brings_the_rows(pg15: PgCluster, spaced: Spaced) -> None:
    assert helpers.table_counts(pg15, spaced.target) == {"public.spaced": 3}


# ------------------------------------------------------------------ empty schemas
@dataclass(frozen=True)
class EmptySchema:
    target: str
    plain: cli.Run
    relations_after_plain: list[tuple[str, str, str]]
    clean: cli.Run
    relations_after_clean: list[tuple[str, str, str]]


@pytest.fixture(scope="module")
def empty_schema(s3: MotoServer, pg15: PgCluster, tmp_root: Path) -> EmptySchema:
    source = postgres.new_database(pg15, "schema_src")
    pg15.run_sql("CREATE SCHEMA app; CREATE TABLE app.t (id int); INSERT INTO app.t VALUES (1), (2)", source)
    target = postgres.new_database(pg15, "schema_target")
    pg15.run_sql("CREATE SCHEMA app", target)
    with buckets.fresh_bucket(s3, "abb-schema") as bucket:
        backup = cli.take_backup(s3, bucket, pg15.superuser_url(source))
        env = cli.job_env(s3.endpoint_url, bucket)
        plain = cli.restore(env, backup.uri, pg15.superuser_url(target))
        with postgres.connect(pg15, target) as conn:
            after_plain = postgres.user_relations(conn)
        clean = cli.restore(env, backup.uri, pg15.superuser_url(target), "--clean", "--confirm-target", target,
                            "--safety-backup-dir", str(tmp_root / postgres.unique_name("s")))
        with postgres.connect(pg15, target) as conn:
            after_clean = postgres.user_relations(conn)
    return EmptySchema(target, plain, after_plain, clean, after_clean)


def test_an_empty_schema_makes_the_target_non_empty(empty_schema: EmptySchema) -> None:
    assert (empty_schema.plain.returncode, empty_schema.plain.error_message.startswith(
        f"target database {empty_schema.target} is not empty (1 objects: schema app)")) == (8, True), \
        str(empty_schema.plain)


def test_the_refusal_left_the_schema_alone(empty_schema: EmptySchema) -> None:
    assert empty_schema.relations_after_plain == []


def test_clean_drops_the_empty_schema_and_restores(empty_schema: EmptySchema) -> None:
    assert (empty_schema.clean.returncode, empty_schema.relations_after_clean) == (0, [("app", "t", "r")]), \
        str(empty_schema.clean)

"""Confirmed defects of the restore path (issue 15, item 6), each proven against real
servers: passwords libpq cannot parse, inspection settings that differ between source and
target, objects outside any schema, sequences that lag or descend, a part size that is not
one, a snapshot connection lost after the upload. (A report path or a scratch directory that
cannot be used are rows of the failure-mode table, tests/reliability/cases.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent_bom_backup.backup import _end_snapshot
from agent_bom_backup.dump import dump_globals
from agent_bom_backup.errors import DumpError
from agent_bom_backup.pgclients import PgClient
from agent_bom_backup.pgconn import ConnInfo, SessionSettings
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

SECRET = "Sup3rS3cretPw"


# ------------------------------------------------------------------ passwords libpq cannot parse
URLS = {
    "raw-percent": f"postgresql://postgres:{SECRET}%zz@127.0.0.1:{{port}}/postgres",
    "raw-space": f"postgresql://postgres:{SECRET} x@127.0.0.1:{{port}}/postgres",
    "conninfo-space": f"host=127.0.0.1 port={{port}} user=postgres password=pw {SECRET} dbname=postgres",
}


@dataclass(frozen=True)
class Unparsable:
    run: cli.Run
    report: str


@pytest.fixture(scope="module", params=list(URLS), ids=list(URLS))
def unparsable(request: pytest.FixtureRequest, s3: MotoServer, backup15: cli.Backup, pg15: PgCluster,
               tmp_root: Path) -> Unparsable:
    report = tmp_root / postgres.unique_name("report")
    url = URLS[request.param].format(port=pg15.port)
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, url, "--report", str(report))
    return Unparsable(run, report.read_text() if report.exists() else "")


def test_unparsable_target_url_is_a_configuration_error(unparsable: Unparsable) -> None:
    assert (unparsable.run.returncode, unparsable.run.error_message.startswith(
        "restore target URL is not a valid PostgreSQL URL")) == (3, True), str(unparsable.run)


def test_unparsable_url_password_is_not_in_the_error_line(unparsable: Unparsable) -> None:
    assert SECRET not in unparsable.run.error_message


def test_unparsable_url_password_is_not_in_the_log_or_summary(unparsable: Unparsable) -> None:
    assert SECRET not in unparsable.run.stderr + unparsable.run.stdout


def test_unparsable_url_password_is_not_in_the_report(unparsable: Unparsable) -> None:
    assert unparsable.report and SECRET not in unparsable.report


def test_unparsable_backup_url_password_is_not_echoed(s3: MotoServer, bucket: str, pg15: PgCluster) -> None:
    run = cli.backup(cli.job_env(s3.endpoint_url, bucket, URLS["raw-percent"].format(port=pg15.port)))
    assert (run.returncode, SECRET in run.stderr + run.stdout) == (3, False), str(run)


# ------------------------------------------------------------------ inspection settings on both sides
@dataclass(frozen=True)
class Settled:
    run: cli.Run
    report: dict[str, Any]


@pytest.fixture(scope="module")
def settled(s3: MotoServer, new_bucket: Callable[[], str], pg15: PgCluster, tmp_root: Path) -> Settled:
    """A source whose tenant keys print differently by TimeZone and DateStyle, backed up
    with the source database's settings at odd values and restored into a database whose
    settings are odd in another way (and whose search_path lacks public)."""
    source = postgres.seeded_database(pg15, "settings_src")
    pg15.run_sql("CREATE TABLE shifts (id serial PRIMARY KEY, team_id timestamptz NOT NULL); "
                 "INSERT INTO shifts (team_id) SELECT timestamptz '2026-03-01 22:30:00+00' + g * interval '5 hours' "
                 "FROM generate_series(1, 9) g; "
                 "CREATE TABLE days (id serial PRIMARY KEY, team_id date NOT NULL); "
                 "INSERT INTO days (team_id) SELECT date '2026-01-02' + (g % 3) FROM generate_series(1, 8) g;",
                 source.name)
    pg15.run_sql(f"ALTER DATABASE {source.name} SET TimeZone = 'America/Los_Angeles'; "
                 f"ALTER DATABASE {source.name} SET DateStyle = 'German, DMY'; "
                 f"ALTER DATABASE {source.name} SET search_path = \"$user\"")
    backup = cli.take_backup(s3, new_bucket(), source.url)
    target = postgres.new_database(pg15, "settings_target")
    pg15.run_sql(f"ALTER DATABASE {target} SET TimeZone = 'Asia/Kolkata'; "
                 f"ALTER DATABASE {target} SET DateStyle = 'SQL, MDY'; "
                 f"ALTER DATABASE {target} SET search_path = pg_catalog")
    report = tmp_root / postgres.unique_name("report")
    run = cli.restore(cli.job_env(s3.endpoint_url, backup.bucket), backup.uri, pg15.superuser_url(target),
                      "--report", str(report))
    return Settled(run, json.loads(report.read_text()))


def test_restore_verifies_whatever_the_two_databases_set(settled: Settled) -> None:
    assert (settled.run.returncode, settled.report["status"]) == (0, "verified"), str(settled.run)


def test_tenant_keys_are_printed_the_same_on_both_sides(settled: Settled) -> None:
    days = next(t for t in settled.report["verification"]["tables"] if t["table"] == "public.days")
    assert (days["tenants_ok"], days["tenant_diff"]) == (True, {})


# ------------------------------------------------------------------ objects outside any schema
OUTSIDE = {
    "large-object": ("SELECT lo_from_bytea(0, 'leftover')", "large object "),
    "event-trigger": ("CREATE SCHEMA hooks; CREATE FUNCTION hooks.et() RETURNS event_trigger LANGUAGE plpgsql AS "
                      "$$BEGIN END$$; CREATE EVENT TRIGGER leftover_et ON ddl_command_start EXECUTE FUNCTION hooks.et()",
                      "event trigger leftover_et"),
    "publication": ("CREATE PUBLICATION leftover_pub", "publication leftover_pub"),
}


def _target_with(pg15: PgCluster, statement: str) -> str:
    target = postgres.new_database(pg15, "outside")
    pg15.run_sql(statement, target)
    return target


@pytest.mark.parametrize("kind", list(OUTSIDE), ids=list(OUTSIDE))
def test_objects_outside_schemas_make_the_target_non_empty(kind: str, s3: MotoServer, backup15: cli.Backup,
                                                          pg15: PgCluster) -> None:
    statement, shown = OUTSIDE[kind]
    target = _target_with(pg15, statement)
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15.superuser_url(target))
    assert (run.returncode, shown in run.error_message) == (8, True), str(run)


@dataclass(frozen=True)
class Wiped:
    run: cli.Run
    left: list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def wiped(s3: MotoServer, backup15: cli.Backup, pg15: PgCluster, tmp_root: Path) -> Wiped:
    target = postgres.new_database(pg15, "outside_all")
    pg15.run_sql("SELECT lo_from_bytea(0, 'leftover'); CREATE PUBLICATION leftover_pub; "
                 "CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$; "
                 "CREATE EVENT TRIGGER leftover_et ON ddl_command_start EXECUTE FUNCTION et()", target)
    run = cli.restore(cli.job_env(s3.endpoint_url, backup15.bucket), backup15.uri, pg15.superuser_url(target),
                      "--clean", "--confirm-target", target, "--safety-backup-dir", str(tmp_root / postgres.unique_name("s")))
    left = pg15.run_sql("SELECT 'lo', count(*) FROM pg_largeobject_metadata UNION ALL "
                        "SELECT 'event trigger', count(*) FROM pg_event_trigger UNION ALL "
                        "SELECT 'publication', count(*) FROM pg_publication", target)
    return Wiped(run, left)


def test_clean_over_objects_outside_schemas_restores(wiped: Wiped) -> None:
    assert wiped.run.returncode == 0, str(wiped.run)


def test_clean_drops_large_objects_event_triggers_and_publications(wiped: Wiped) -> None:
    assert wiped.left == [("lo", 0), ("event trigger", 0), ("publication", 0)]


# ------------------------------------------------------------------ sequences that lag or descend
@pytest.fixture(scope="module")
def sequenced(s3: MotoServer, new_bucket: Callable[[], str], pg15: PgCluster, tmp_root: Path) -> helpers.RestoreOf:
    """A sequence that lags its column's explicitly inserted ids, and a descending one."""
    source = postgres.new_database(pg15, "sequences")
    pg15.run_sql("CREATE TABLE imported (id bigserial PRIMARY KEY, note text); "
                 "INSERT INTO imported (note) VALUES ('a'), ('b'); "
                 "INSERT INTO imported (id, note) SELECT 1000 + g, 'imported' FROM generate_series(1, 5) g; "
                 "CREATE SEQUENCE countdown INCREMENT BY -1 MINVALUE 1 MAXVALUE 100 START 100; "
                 "CREATE TABLE tickets (id bigint PRIMARY KEY DEFAULT nextval('countdown')); "
                 "ALTER SEQUENCE countdown OWNED BY tickets.id; "
                 "INSERT INTO tickets SELECT FROM generate_series(1, 4)", source)
    backup = cli.take_backup(s3, new_bucket(), pg15.superuser_url(source))
    report = tmp_root / postgres.unique_name("report")
    run = cli.restore(cli.job_env(s3.endpoint_url, backup.bucket), backup.uri,
                      pg15.superuser_url(postgres.new_database(pg15, "sequences_target")), "--report", str(report))
    return helpers.RestoreOf(backup, run, json.loads(report.read_text()))


def test_lagging_and_descending_sequences_verify(sequenced: helpers.RestoreOf) -> None:
    assert (sequenced.run.returncode, sequenced.report["verification"]["sequence_problems"]) == (0, []), \
        str(sequenced.run)


def test_manifest_records_the_source_sequence_state(sequenced: helpers.RestoreOf) -> None:
    states = {s["name"]: (s["increment"], s["last_value"], s["is_called"]) for s in sequenced.backup.manifest["sequences"]}
    assert states == {"countdown": (-1, 97, True), "imported_id_seq": (1, 2, True)}


def test_a_sequence_behind_the_recorded_state_fails_verification(s3: MotoServer, sequenced: helpers.RestoreOf,
                                                                 pg15: PgCluster) -> None:
    with buckets.fresh_bucket(s3, "abb-seq") as bucket:
        client = s3.client()
        cli.copy_backup(client, sequenced.backup, bucket)
        manifest = dict(sequenced.backup.manifest)
        manifest["sequences"] = [{**s, "last_value": s["last_value"] + 50 * s["increment"]}
                                 for s in manifest["sequences"]]
        buckets.put_object(client, bucket, buckets.manifest_key(sequenced.backup.key), json.dumps(manifest).encode())
        run = cli.restore(cli.job_env(s3.endpoint_url, bucket), sequenced.backup.uri_in(bucket),
                          pg15.superuser_url(postgres.new_database(pg15, "sequences_behind")))
    assert (run.returncode, "behind the source's" in run.error_message) == (11, True), str(run)


# ------------------------------------------------------------------ settings refused before anything runs
# (a report path or scratch directory that cannot be used, and the part size "abc", are rows of the
# failure-mode table: tests/reliability/cases.py, restore-report-unwritable, restore-scratch-dir-missing,
# backup-bad-part-size)
@pytest.mark.parametrize("value", ["-5", "1e3", "99999999999999TiB"])
def test_bad_part_size_is_a_configuration_error(value: str, s3: MotoServer, bucket: str,
                                                 source15: postgres.Database) -> None:
    run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source15.url, AGENT_BOM_BACKUP_PART_SIZE=value))
    assert (run.returncode, [e["message"].startswith("--part-size: ") for e in run.errors]) == (3, [True]), str(run)


# ------------------------------------------------------------------ pg_dumpall hangs; the snapshot connection is lost
def test_pg_dumpall_timeout_is_a_dump_error(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "pg_dumpall"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    client = PgClient(major=15, version="15", bin_dir=fake)
    with pytest.raises(DumpError, match=r"pg_dumpall --globals-only did not finish within 1 s"):
        dump_globals(client, ConnInfo.parse("postgresql://u@127.0.0.1:1/db"), SessionSettings(), timeout_s=1)


def test_lost_snapshot_connection_after_the_upload_is_a_warning(pg15: PgCluster) -> None:
    conn = psycopg.connect(pg15.conninfo(), autocommit=False)
    conn.execute("SELECT 1")
    pg15.run_sql("SELECT pg_terminate_backend(%s)", params=[conn.info.backend_pid])
    _end_snapshot(conn)  # must not raise: the dump is uploaded
    conn.close()


def test_every_connection_asks_for_tcp_keepalives(pg15: PgCluster) -> None:
    info = ConnInfo.parse(pg15.superuser_url())
    with info.connect(SessionSettings(server_major=15)) as conn:
        parameters = conn.info.get_parameters()
    assert {k: parameters.get(k) for k in ("keepalives", "keepalives_idle")} == {"keepalives": "1",
                                                                                 "keepalives_idle": "30"}

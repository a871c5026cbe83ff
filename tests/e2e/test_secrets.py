"""The database password never appears in any process's argv, in output or in the report.

A watcher polls /proc/*/cmdline of every process while the CLI, pg_dump, pg_dumpall,
pg_restore and the restore script run. The password holds URL-reserved characters and
travels percent-encoded in the URLs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from psycopg import sql

from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import DEFAULT_REGION, MotoServer

PASSWORD = f"S3cr3t:/@?#[]&=+$,;% {uuid.uuid4().hex[:10]}"
FORMS = tuple({PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD)})


@dataclass
class Watched:
    """A process tree run to completion while /proc was polled."""

    run: cli.Run
    pid: int
    seen: dict[int, bytes] = field(default_factory=dict)  # pid -> cmdline holding the password
    scans: int = 0


def _run_watched(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Watched:
    stop = threading.Event()
    seen: dict[int, bytes] = {}
    scans = [0]

    def watch() -> None:
        while not stop.is_set():
            for pid, cmdline in cli.cmdlines().items():
                if any(form.encode() in cmdline for form in FORMS):
                    seen[pid] = cmdline
            scans[0] += 1
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    job = cli.Job(argv, env, cwd)
    run = job.wait()
    stop.set()
    watcher.join()
    return Watched(run, job.pid, seen, scans[0])


@dataclass(frozen=True)
class Runs:
    backup: Watched
    restore_pgpassword: Watched
    restore_url_password: Watched
    reports: list[Path]


@pytest.fixture(scope="module")
def secret_user(pg15: PgCluster) -> str:
    user = postgres.unique_name("abb_pw_user")
    pg15.run_sql(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
        sql.Identifier(user), sql.Literal(PASSWORD)).as_string(None))
    return user


@pytest.fixture(scope="module")
def runs(s3: MotoServer, source15: postgres.Database, secret_user: str, tmp_root: Path) -> Iterator[Runs]:
    pg = source15.cluster
    work = tmp_root / postgres.unique_name("secrets")
    work.mkdir()
    reports = [work / "pgpassword.json", work / "url-password.json"]
    with buckets.fresh_bucket(s3, "abb-secrets") as bucket:
        env = cli.job_env(s3.endpoint_url, bucket)
        backup = _run_watched([str(cli.executable()), "backup"],
                              env | {"AGENT_BOM_POSTGRES_URL": pg.url(source15.name, secret_user, PASSWORD)})
        assert backup.run.returncode == 0, str(backup.run)
        uri = backup.run.stdout.strip()
        # the docs' advice: a password-less URL plus PGPASSWORD
        restore_pgpassword = _run_watched(
            [str(cli.RESTORE_SCRIPT), uri, pg.url(postgres.new_database(pg, "target"), secret_user),
             DEFAULT_REGION, "--report", str(reports[0])], env | {"PGPASSWORD": PASSWORD}, cwd=work)
        assert restore_pgpassword.run.returncode == 0, str(restore_pgpassword.run)
        # the runbook's way: the password in the positional URL
        restore_url_password = _run_watched(
            [str(cli.RESTORE_SCRIPT), uri, pg.url(postgres.new_database(pg, "target"), secret_user, PASSWORD),
             DEFAULT_REGION, "--report", str(reports[1])], env, cwd=work)
        assert restore_url_password.run.returncode == 0, str(restore_url_password.run)
        yield Runs(backup, restore_pgpassword, restore_url_password, reports)


def test_watcher_sees_a_password_in_argv() -> None:
    control = _run_watched(["/bin/sh", "-c", "sleep 0.3", "control", quote(PASSWORD, safe="")], cli.base_env())
    assert list(control.seen) == [control.pid]


def test_watcher_scanned_while_processes_ran(runs: Runs) -> None:
    assert min(w.scans for w in (runs.backup, runs.restore_pgpassword, runs.restore_url_password)) >= 20


def test_password_never_in_argv_during_backup(runs: Runs) -> None:
    assert runs.backup.seen == {}


def test_password_never_in_argv_during_restore_with_pgpassword(runs: Runs) -> None:
    assert runs.restore_pgpassword.seen == {}


def test_password_in_the_script_url_stays_out_of_the_processes_it_starts(runs: Runs) -> None:
    watched = runs.restore_url_password
    # the script's own process (``/usr/bin/env bash SCRIPT URI URL ...``, then ``bash SCRIPT ...``)
    # holds it until it execs the CLI; no other process may
    script = str(cli.RESTORE_SCRIPT).encode()
    holders = {pid: script in cmdline.split(b"\0")[:3] for pid, cmdline in watched.seen.items()}
    assert set(holders) <= {watched.pid} and all(holders.values())


@pytest.mark.parametrize("which", ["backup", "restore_pgpassword", "restore_url_password"])
def test_password_never_in_output(runs: Runs, which: str) -> None:
    run = getattr(runs, which).run
    assert not any(form in run.stdout + run.stderr for form in FORMS)


@pytest.mark.parametrize("index", [0, 1], ids=["pgpassword", "url-password"])
def test_password_never_in_the_report(runs: Runs, index: int) -> None:
    text = runs.reports[index].read_text()
    assert json.loads(text)["status"] == "verified" and not any(form in text for form in FORMS)

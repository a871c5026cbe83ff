"""No libpq secret in any client's argv: ``password`` and ``sslpassword`` reach pg_dump,
pg_dumpall, pg_restore and psql through the environment or a private service file.

The clients are wrapped: a --pg-bin-dir of scripts that append their argv to a log, then
exec the real binary. A backup, a --clean restore (its safety dump included) and a
``verify --deep`` run with both secrets in their URLs; the log must hold neither. libpq
reads ``sslpassword`` only to decrypt an encrypted client key, so over a Unix socket it
is carried and ignored: what matters is where it travels."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

SSL_SECRET = "SslKeyPassphrase-7f3a9c"
CLIENTS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret)}


@dataclass(frozen=True)
class Logged:
    runs: dict[str, cli.Run]
    argv_log: str
    secrets: set[str]


def _wrappers(directory: Path, real: Path, log: Path) -> Path:
    directory.mkdir()
    for name in CLIENTS:
        wrapper = directory / name
        wrapper.write_text(f'#!/bin/sh\nprintf "%s " "$0" "$@" >> {log}\necho >> {log}\nexec {real / name} "$@"\n')
        wrapper.chmod(stat.S_IRWXU)
    return directory


@pytest.fixture(scope="module")
def logged(s3: MotoServer, pg15: PgCluster, source15: postgres.Database, tmp_root: Path) -> Logged:
    work = tmp_root / postgres.unique_name("argv")
    work.mkdir()
    log = work / "argv.log"
    log.touch()
    bin_dir = _wrappers(work / "bin", tools.pg_bin_dir(15), log)
    with_secrets = {"sslpassword": SSL_SECRET}
    runs: dict[str, cli.Run] = {}
    with buckets.fresh_bucket(s3, "abb-argv") as bucket:
        env = cli.job_env(s3.endpoint_url, bucket, AGENT_BOM_BACKUP_PG_BIN_DIRS=str(bin_dir),
                          AGENT_BOM_BACKUP_PG_BIN_DIRS_ONLY="true")
        runs["backup"] = cli.backup(env | {"AGENT_BOM_POSTGRES_URL": pg15.superuser_url(source15.name, **with_secrets)})
        uri = runs["backup"].uri
        target = postgres.seeded_database(pg15, "argv_target", postgres.SMALL_SEED).name
        runs["restore --clean"] = cli.restore(env, uri, pg15.superuser_url(target, **with_secrets),
                                              "--clean", "--confirm-target", target,
                                              "--safety-backup-dir", str(work / "safety"))
        runs["verify --deep"] = cli.run_cli(["verify", uri, "--deep"], env | {
            "AGENT_BOM_VERIFY_SCRATCH_URL": pg15.superuser_url(**with_secrets)})
    return Logged(runs, log.read_text(), _forms(pg15.superuser_password) | _forms(SSL_SECRET))


@pytest.mark.parametrize("which", ["backup", "restore --clean", "verify --deep"])
def test_run_succeeds_through_the_wrapped_clients(logged: Logged, which: str) -> None:
    assert logged.runs[which].returncode == 0, str(logged.runs[which])


@pytest.mark.parametrize("client", ["pg_dump", "pg_dumpall", "pg_restore"])
def test_the_wrappers_logged_each_client(logged: Logged, client: str) -> None:
    assert f"/{client} " in logged.argv_log


def test_the_safety_dump_ran_through_the_wrapper(logged: Logged) -> None:
    assert any("--file=" in line and "/pg_dump " in line for line in logged.argv_log.splitlines())


def test_the_sslpassword_travelled_as_a_service(logged: Logged) -> None:
    """Every connecting client run (not pg_dump's capability probe against no server)."""
    connecting = [line for line in logged.argv_log.splitlines()
                  if "--dbname=" in line and "nonexistent-agent-bom-socket-dir" not in line]
    assert connecting and [line for line in connecting if "service=agent-bom-backup" not in line] == []


def test_no_secret_in_any_client_argv(logged: Logged) -> None:
    assert [form for form in logged.secrets if form in logged.argv_log] == []

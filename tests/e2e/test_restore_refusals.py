"""Every refusal is a clear error with its documented exit code, and it leaves the target
database exactly as it was: relations, row counts, policies, the cluster's roles, and no
safety backup written."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from tests.e2e import helpers
from devstack import tools
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec

# (S3 client, backup, other backup, bucket): put a damaged copy of ``backup`` into ``bucket``
Tamper = Callable[[BaseClient, cli.Backup, cli.Backup, str], None]


def _flip_a_byte(client: BaseClient, backup: cli.Backup, _other: cli.Backup, bucket: str) -> None:
    cli.copy_backup(client, backup, bucket)
    data = bytearray(buckets.get_object(client, bucket, backup.key))
    data[len(data) // 2] ^= 0xFF
    buckets.put_object(client, bucket, backup.key, bytes(data))


def _truncate(client: BaseClient, backup: cli.Backup, _other: cli.Backup, bucket: str) -> None:
    cli.copy_backup(client, backup, bucket)
    data = buckets.get_object(client, bucket, backup.key)
    buckets.put_object(client, bucket, backup.key, data[: len(data) - 4096])


def _drop_manifest(client: BaseClient, backup: cli.Backup, _other: cli.Backup, bucket: str) -> None:
    cli.copy_backup(client, backup, bucket, parts=("dump", "roles"))


def _manifest_of_another_backup(client: BaseClient, backup: cli.Backup, other: cli.Backup, bucket: str) -> None:
    cli.copy_backup(client, backup, bucket, parts=("dump", "roles"))
    manifest = buckets.get_object(client, other.bucket, buckets.manifest_key(other.key))
    buckets.put_object(client, bucket, buckets.manifest_key(backup.key), manifest)


@dataclass(frozen=True)
class Case:
    target: str  # "empty15", "nonempty15", "source15" or "empty18"
    exit_code: int
    message: str  # in the error line; "{target}" is the target database's name
    args: tuple[str, ...] = ()  # "{target}" and "{pg15_bin}" are filled in
    backup: str = "backup15"  # the fixture holding the backup to restore
    tamper: Tamper | None = None
    live_url: bool = False  # AGENT_BOM_POSTGRES_URL names the target


CASES = {
    "non-empty-target-without-clean": Case("nonempty15", 8, "target database {target} is not empty"),
    "clean-without-confirm-target": Case("nonempty15", 8, "--confirm-target is not set", ("--clean",)),
    "clean-with-another-confirm-target": Case(
        "nonempty15", 8, "--confirm-target is agent_bom", ("--clean", "--confirm-target", "agent_bom")),
    "backup-source-without-approval": Case(
        "source15", 8, "is the live source database", ("--clean", "--confirm-target", "{target}")),
    "live-database-url-without-approval": Case(
        "nonempty15", 8, "is the live source database", ("--clean", "--confirm-target", "{target}"), live_url=True),
    "corrupted-object": Case("empty15", 7, "does not match its manifest", tamper=_flip_a_byte),
    "truncated-object": Case("empty15", 7, "truncated or replaced", tamper=_truncate),
    "missing-manifest": Case("empty15", 7, "has no manifest: it is incomplete", tamper=_drop_manifest),
    "manifest-of-another-backup": Case("empty15", 7, "describes", tamper=_manifest_of_another_backup),
    "pg_dump-18-archive-with-only-pg_restore-15": Case(
        "empty18", 4, "no pg_restore can read an archive written by pg_dump 18",
        ("--pg-bin-dir", "{pg15_bin}", "--only-pg-bin-dirs"), backup="backup18"),
    "extension-missing-on-the-target-server": Case(
        "empty18", 8, "cannot install extensions the backup uses: pgcrypto", backup="pgcrypto_backup"),
}


@pytest.fixture(scope="module")
def pgcrypto_backup(s3: MotoServer, new_bucket: Callable[[], str], pg15: PgCluster) -> cli.Backup:
    """A PostgreSQL 15 database using pgcrypto, which the embedded PostgreSQL 18 lacks."""
    name = postgres.new_database(pg15, "crypto")
    pg15.run_sql("CREATE EXTENSION pgcrypto; CREATE TABLE secrets AS "
                 "SELECT g AS id, digest(g::text, 'sha256') AS hash FROM generate_series(1, 10) g", name)
    return cli.take_backup(s3, new_bucket(), pg15.superuser_url(name))


@dataclass(frozen=True)
class Refusal:
    case: Case
    target: str
    run: cli.Run
    before: dict[str, Any]
    after: dict[str, Any]
    safety_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _target(request: pytest.FixtureRequest, kind: str) -> tuple[PgCluster, str]:
    if kind == "source15":
        source: postgres.Database = request.getfixturevalue("source15")
        return source.cluster, source.name
    if kind == "nonempty15":
        pg15: PgCluster = request.getfixturevalue("pg15")
        name = postgres.seeded_database(pg15, "nonempty", SeedSpec(tenants=("team-other",), audit_rows_per_tenant=5)).name
        return pg15, name
    cluster: PgCluster = request.getfixturevalue("pg15" if kind == "empty15" else "pg18")
    return cluster, postgres.new_database(cluster, "target")


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def refusal(request: pytest.FixtureRequest, s3: MotoServer, tmp_root: Path) -> Refusal:
    case = CASES[request.param]
    backup: cli.Backup = request.getfixturevalue(case.backup)
    cluster, target = _target(request, case.target)
    url = cluster.superuser_url(target)
    safety_dir = tmp_root / postgres.unique_name("safety")
    env = {"AGENT_BOM_POSTGRES_URL": url} if case.live_url else {}
    args = [a.format(target=target, pg15_bin=tools.pg_bin_dir(15)) for a in case.args]
    with contextlib.ExitStack() as stack:
        bucket = backup.bucket
        if case.tamper is not None:
            bucket = stack.enter_context(buckets.fresh_bucket(s3, "abb-tamper"))
            other = request.getfixturevalue("backup18")
            case.tamper(s3.client(), backup, other, bucket)
        before = helpers.database_state(cluster, target)
        run = cli.restore(cli.job_env(s3.endpoint_url, bucket) | env, backup.uri_in(bucket), url,
                              "--safety-backup-dir", str(safety_dir), *args)
    return Refusal(case, target, run, before, helpers.database_state(cluster, target), safety_dir)


def test_refusal_exits_with_its_documented_code(refusal: Refusal) -> None:
    assert refusal.run.returncode == refusal.case.exit_code, str(refusal.run)


def test_refusal_logs_one_clear_error(refusal: Refusal) -> None:
    expected = refusal.case.message.format(target=refusal.target)
    assert [expected in e["message"] for e in refusal.run.errors] == [True], str(refusal.run)


def test_refusal_leaves_the_target_unchanged(refusal: Refusal) -> None:
    assert refusal.after == refusal.before


def test_refusal_writes_no_safety_backup(refusal: Refusal) -> None:
    assert not refusal.safety_dir.exists()


def test_refusal_prints_a_report_saying_so(refusal: Refusal) -> None:
    status = "refused" if refusal.case.exit_code in (4, 8) else "failed"
    assert f"status:            {status.upper()}" in refusal.run.stdout.splitlines()

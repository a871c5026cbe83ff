"""The IAM documents in deploy/iam/ are enough for their job and no more.

A dedicated moto server enforces IAM (Action and Resource; not Conditions, not KMS — see
tests/reliability/iam.py and docs/failure-modes.md). One IAM user per document runs the
real CLI, then tries what its role must not do. parliament lints every document offline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from parliament import analyze_policy_string, enhance_finding

from tests.reliability import harness
from tests.reliability.iam import IAM_DIR, IamWorld, error_code, start_iam_world
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import DEFAULT_REGION

DENIED = ("AccessDenied", "403")


@dataclass
class Runs:
    """The CLI, run once per role against the IAM-enforcing server."""

    world: IamWorld
    backups: list[cli.Run]
    check: cli.Run
    restore: cli.Run
    report: dict[str, Any]
    #: a --clean restore with --safety-backup-to-bucket, as the restore role, and its report
    clean: cli.Run
    clean_report: dict[str, Any]
    prune: cli.Run
    keys_before_prune: list[str]
    keys_after_prune: list[str]

    def dump_keys(self) -> list[str]:
        return [r.uri.removeprefix(f"s3://{self.world.bucket}/") for r in self.backups]


@pytest.fixture(scope="module")
def world(tmp_root: Path) -> Iterator[IamWorld]:
    world = start_iam_world(tmp_root / postgres.unique_name("moto-iam"))
    try:
        yield world
    finally:
        world.server.stop()


@pytest.fixture(scope="module")
def runs(world: IamWorld, small_source: postgres.Database, pg15: PgCluster, tmp_root: Path) -> Runs:
    kms = boto3.client("kms", endpoint_url=world.endpoint_url, region_name=DEFAULT_REGION,
                       aws_access_key_id=world.keys["admin"][0], aws_secret_access_key=world.keys["admin"][1])
    key_id = kms.create_key(Description="agent-bom backups")["KeyMetadata"]["KeyId"]
    env = cli.job_env(world.endpoint_url, world.bucket, small_source.url,
                      AGENT_BOM_BACKUP_SSE="aws:kms", AGENT_BOM_BACKUP_KMS_KEY_ID=key_id)
    backups = []
    for _ in range(2):  # two backups, in different seconds, so prune has one to delete
        backups.append(cli.backup({**env, **world.credentials("backup")}))
        time.sleep(1.1)
    check = cli.run_cli(["check", "--max-age", "1h"], {**env, **world.credentials("backup")})
    target = postgres.new_database(pg15, "rel_lp_target")
    report_path = tmp_root / f"{postgres.unique_name('lp-report')}.json"
    restore = cli.restore({**env, **world.credentials("restore")}, "latest", pg15.superuser_url(target),
                          "--report", str(report_path))
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    replaced = postgres.seeded_database(pg15, "rel_lp_replaced", postgres.SMALL_SEED).name
    clean_path = tmp_root / f"{postgres.unique_name('lp-clean')}.json"
    clean = cli.restore({**env, **world.credentials("restore")}, "latest", pg15.superuser_url(replaced),
                        "--clean", "--confirm-target", replaced, "--safety-backup-to-bucket", "--report", str(clean_path))
    clean_report = json.loads(clean_path.read_text()) if clean_path.exists() else {}
    pg15.run_sql(f'DROP DATABASE IF EXISTS "{replaced}" WITH (FORCE)')
    before = buckets.object_keys(world.admin, world.bucket)
    prune = cli.run_cli(["prune", "--keep-days", "0", "--keep-last", "1", "--yes"], {**env, **world.credentials("prune")})
    after = buckets.object_keys(world.admin, world.bucket)
    pg15.run_sql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    return Runs(world, backups, check, restore, report, clean, clean_report, prune, before, after)


# ------------------------------------------------------------------ each role does its job
def test_backup_role_takes_complete_backups(runs: Runs) -> None:
    assert [r.returncode for r in runs.backups] == [0, 0], "\n".join(map(str, runs.backups))


def test_backup_role_can_run_the_freshness_check(runs: Runs) -> None:
    assert runs.check.returncode == 0, str(runs.check)


def test_restore_role_restores_and_verifies(runs: Runs) -> None:
    assert (runs.restore.returncode, runs.report.get("status")) == (0, "verified"), str(runs.restore)


def test_restore_role_writes_the_safety_backup_under_safety(runs: Runs) -> None:
    assert (runs.clean.returncode, runs.clean_report.get("status")) == (0, "verified"), str(runs.clean)
    assert runs.clean_report["safety_backup"].startswith(f"s3://{runs.world.bucket}/{cli.PREFIX}/safety/agent-bom-")


def test_prune_leaves_safety_backups_alone(runs: Runs) -> None:
    safety = [k for k in runs.keys_before_prune if k.startswith(f"{cli.PREFIX}/safety/agent-bom-")]
    assert len(safety) >= 3 and set(safety) <= set(runs.keys_after_prune)


def test_prune_role_deletes_the_expired_backup_and_keeps_the_newest(runs: Runs) -> None:
    older, newest = sorted(runs.dump_keys())
    stem = older.removesuffix(".dump")
    expected = sorted(k for k in runs.keys_before_prune if not k.startswith(stem))
    assert (runs.prune.returncode, runs.keys_after_prune, newest in runs.keys_after_prune) == (0, expected, True), str(runs.prune)


# ------------------------------------------------------------------ and nothing else
Probe = Callable[[Any, str, str], Any]


def _put(client: Any, bucket: str, key: str) -> Any:
    return client.put_object(Bucket=bucket, Key=key, Body=b"probe")


def _multipart(client: Any, bucket: str, key: str) -> Any:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    return client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])


def _delete_objects(client: Any, bucket: str, key: str) -> Any:
    return client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})


def _list_prefix(client: Any, bucket: str, _key: str) -> Any:
    return client.list_objects_v2(Bucket=bucket, Prefix=cli.PREFIX + "/")


# (role, what, probe, which object: "dump" | "manifest" | "roles" | "probe" (a fresh key under the prefix) | "outside")
FORBIDDEN: list[tuple[str, str, Probe, str]] = [
    ("backup", "read a dump (GetObject)", lambda c, b, k: c.get_object(Bucket=b, Key=k), "dump"),
    ("backup", "read a dump's metadata (HeadObject)", lambda c, b, k: c.head_object(Bucket=b, Key=k), "dump"),
    ("backup", "read a manifest (GetObject)", lambda c, b, k: c.get_object(Bucket=b, Key=k), "manifest"),
    ("backup", "delete a dump (DeleteObject)", lambda c, b, k: c.delete_object(Bucket=b, Key=k), "dump"),
    ("backup", "delete a dump (DeleteObjects)", _delete_objects, "dump"),
    ("backup", "write outside the prefix (PutObject)", _put, "outside"),
    ("restore", "write under the prefix, outside safety/ (PutObject)", _put, "probe"),
    ("restore", "write outside the prefix (PutObject)", _put, "outside"),
    ("restore", "start a multipart upload", _multipart, "probe"),
    ("restore", "overwrite a dump (PutObject)", _put, "dump"),
    ("restore", "delete a dump (DeleteObject)", lambda c, b, k: c.delete_object(Bucket=b, Key=k), "dump"),
    ("restore", "delete a dump (DeleteObjects)", _delete_objects, "dump"),
    ("prune", "read a dump (GetObject)", lambda c, b, k: c.get_object(Bucket=b, Key=k), "dump"),
    ("prune", "read a roles object (GetObject)", lambda c, b, k: c.get_object(Bucket=b, Key=k), "roles"),
    ("prune", "write under the prefix (PutObject)", _put, "probe"),
    ("prune", "start a multipart upload", _multipart, "probe"),
    ("nobody", "list the prefix", _list_prefix, "probe"),
]

ALLOWED: list[tuple[str, str, Probe, str]] = [
    ("backup", "write under the prefix (PutObject)", _put, "probe"),
    ("backup", "upload and abort a multipart upload", _multipart, "probe"),
    ("backup", "list the prefix", _list_prefix, "probe"),
    ("backup", "read the bucket's region", lambda c, b, k: c.get_bucket_location(Bucket=b), "probe"),
    ("restore", "read a dump (GetObject)", lambda c, b, k: c.get_object(Bucket=b, Key=k), "dump"),
    ("restore", "read a dump's metadata (HeadObject)", lambda c, b, k: c.head_object(Bucket=b, Key=k), "dump"),
    ("restore", "list the prefix", _list_prefix, "probe"),
    ("restore", "write a safety backup under PREFIX/safety/ (PutObject)", _put, "safety"),
    ("prune", "read a manifest (GetObject)", lambda c, b, k: c.get_object(Bucket=b, Key=k), "manifest"),
    ("prune", "delete under the prefix (DeleteObject)", lambda c, b, k: c.delete_object(Bucket=b, Key=k), "probe"),
]


def _key(runs: Runs, which: str) -> str:
    newest = max(runs.dump_keys())
    return {
        "dump": newest,
        "manifest": buckets.manifest_key(newest),
        "roles": buckets.roles_key(newest),
        "probe": f"{cli.PREFIX}/probe-{uuid.uuid4().hex[:8]}",
        "safety": f"{cli.PREFIX}/safety/probe-{uuid.uuid4().hex[:8]}",
        "outside": f"elsewhere/probe-{uuid.uuid4().hex[:8]}",
    }[which]


@pytest.mark.parametrize(("role", "what", "probe", "which"), FORBIDDEN, ids=[f"{r}-{w}" for r, w, _, _ in FORBIDDEN])
def test_role_is_denied(runs: Runs, role: str, what: str, probe: Probe, which: str) -> None:
    assert error_code(lambda: probe(runs.world.client(role), runs.world.bucket, _key(runs, which))) in DENIED


@pytest.mark.parametrize(("role", "what", "probe", "which"), ALLOWED, ids=[f"{r}-{w}" for r, w, _, _ in ALLOWED])
def test_role_is_allowed(runs: Runs, role: str, what: str, probe: Probe, which: str) -> None:
    assert error_code(lambda: probe(runs.world.client(role), runs.world.bucket, _key(runs, which))) == ""


def test_backups_survive_every_forbidden_probe(runs: Runs) -> None:
    """Run last in the module: the denied deletes and overwrites changed nothing."""
    harness.complete_backups_are_intact(runs.world.admin, runs.world.bucket)
    assert max(runs.dump_keys()) in buckets.object_keys(runs.world.admin, runs.world.bucket)


# ------------------------------------------------------------------ parliament
#: the permission policies parliament lints (identity-based); the trust policies beside them
#: (*-trust-policy.json: a Principal and no Resource) are checked by tests/chart/test_iam_trust.py
POLICY_FILES = sorted(IAM_DIR.glob("*-role-policy.json"))


def _findings(text: str) -> list[tuple[str, str, str]]:
    policy = analyze_policy_string(text, include_community_auditors=True)
    return [(f.severity, f.issue, str(f.detail)) for f in map(enhance_finding, policy.findings)]


def test_the_three_documents_exist() -> None:
    assert {p.name for p in POLICY_FILES} >= {"backup-role-policy.json", "restore-role-policy.json", "prune-role-policy.json"}


@pytest.mark.parametrize("path", POLICY_FILES, ids=[p.name for p in POLICY_FILES])
def test_parliament_finds_nothing(path: Path) -> None:
    """Not even LOW: parliament rates a misspelt action (which grants nothing) LOW."""
    assert _findings(path.read_text()) == []


BROKEN_STATEMENTS = [
    ("misspelt-action", {"Action": "s3:GetObjekt", "Resource": "arn:aws:s3:::bucket/*"}, "UNKNOWN_ACTION"),
    ("object-action-on-bucket-arn", {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"}, "RESOURCE_MISMATCH"),
    ("bucket-action-on-object-arn", {"Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bucket/*"}, "RESOURCE_MISMATCH"),
    ("misspelt-condition-key", {"Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bucket",
                                "Condition": {"StringLike": {"s3:prefixx": ["a/"]}}}, "UNKNOWN_CONDITION_FOR_ACTION"),
]


@pytest.mark.parametrize(("statement", "issue"), [c[1:] for c in BROKEN_STATEMENTS], ids=[c[0] for c in BROKEN_STATEMENTS])
def test_parliament_would_catch_a_broken_statement(statement: dict[str, Any], issue: str) -> None:
    """Guards the lint: each mistake is a finding."""
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}
    assert issue in {found for _, found, _ in _findings(json.dumps(document))}


def test_restore_latest_without_read_access_stops_at_the_unreadable_newest(runs: Runs, pg15: PgCluster) -> None:
    """The backup role may list but not read: `restore latest` finds the newest backup's
    manifest unreadable (AccessDenied) and stops there, naming it; it never falls back."""
    env = {**cli.job_env(runs.world.endpoint_url, runs.world.bucket), **runs.world.credentials("backup")}
    target = postgres.new_database(pg15, "rel_lp_denied")
    run = cli.restore(env, "latest", pg15.superuser_url(target))
    newest = max(runs.dump_keys()).rsplit("/", 1)[1].removesuffix(".dump")
    assert (run.returncode, f", {newest}, is unreadable: manifest unreadable: reading failed: access denied"
            in run.error_message) == (8, True), str(run)

"""Client-side encryption to age recipients (issue 30), end to end on moto and Ceph RGW.

The backup job gets only a public key (``AGENT_BOM_BACKUP_ENCRYPT_TO``); the keys are made
with Debian's ``age-keygen``, and the stored dump is decrypted with Debian's ``age`` and
listed by ``pg_restore``: an object is a plain age file, no tool of ours needed. The
restore and ``verify --deep`` decrypt with ``--identity``; a wrong or missing identity and
a truncated ciphertext are refused before the target changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.pgcluster import PgCluster
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from tests.support.stores import Store, store_for

AGE_HEADER = b"age-encryption.org/v1\n"


@dataclass(frozen=True)
class AgeKey:
    identity_file: Path
    recipient: str


def _age_tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run scripts/bootstrap.sh age"
    return path


def _keygen(directory: Path, name: str) -> AgeKey:
    path = directory / f"{name}.txt"
    subprocess.run([_age_tool("age-keygen"), "-o", str(path)], check=True, capture_output=True, timeout=30)
    public = subprocess.run([_age_tool("age-keygen"), "-y", str(path)], check=True, capture_output=True, text=True,
                            timeout=30).stdout.strip()
    return AgeKey(path, public)


@pytest.fixture(scope="module")
def keys(tmp_root: Path) -> dict[str, AgeKey]:
    """Two recipients the backups are encrypted to, and a stranger's key."""
    directory = tmp_root / "age-keys"
    directory.mkdir(exist_ok=True)
    return {name: _keygen(directory, name) for name in ("ops", "escrow", "stranger")}


@dataclass
class Encrypted:
    store: Store
    bucket: str
    backup: cli.Run
    key: str
    manifest: dict

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def env(self, database_url: str | None = None, **extra: str) -> dict[str, str]:
        return self.store.job_env(self.bucket, database_url, **extra)

    def object(self, key: str) -> bytes:
        return buckets.get_object(self.store.client(), self.bucket, key)


@pytest.fixture(scope="module", params=("moto", "rgw-http"))
def encrypted(request: pytest.FixtureRequest, source15: postgres.Database, keys: dict[str, AgeKey]) -> Iterator[Encrypted]:
    store = store_for(request.param, request)
    with store.bucket("abb-age") as bucket:
        recipients = f"{keys['ops'].recipient}\n{keys['escrow'].recipient}\n"
        run = cli.backup(store.job_env(bucket, source15.url, AGENT_BOM_BACKUP_ENCRYPT_TO=recipients))
        assert run.returncode == 0, str(run)
        key = run.uri.removeprefix(f"s3://{bucket}/")
        yield Encrypted(store, bucket, run, key, buckets.read_manifest(store.client(), bucket, key))


# ------------------------------------------------------------------ what is stored
def test_the_stored_dump_is_an_age_file_not_an_archive(encrypted: Encrypted) -> None:
    data = encrypted.object(encrypted.key)
    assert (data.startswith(AGE_HEADER), b"PGDMP" in data) == (True, False)


def test_the_stored_roles_object_is_an_age_file_without_role_names(encrypted: Encrypted) -> None:
    data = encrypted.object(buckets.roles_key(encrypted.key))
    assert (data.startswith(AGE_HEADER), b"CREATE ROLE" in data) == (True, False)


def test_the_manifest_names_the_recipients(encrypted: Encrypted, keys: dict[str, AgeKey]) -> None:
    assert encrypted.manifest["encryption"] == {"format": "age",
                                                "recipients": [keys["ops"].recipient, keys["escrow"].recipient]}


def test_the_manifest_hashes_the_ciphertext_as_stored(encrypted: Encrypted) -> None:
    data = encrypted.object(encrypted.key)
    dump = encrypted.manifest["dump"]
    assert (len(data), buckets.sha256(data)) == (dump["size"], dump["sha256"])


def test_the_manifest_holds_no_secret(encrypted: Encrypted) -> None:
    assert "AGE-SECRET-KEY" not in json.dumps(encrypted.manifest).upper()


# ------------------------------------------------------------------ the 3 a.m. path: age and pg_restore only
def test_the_age_cli_decrypts_the_dump_for_pg_restore(encrypted: Encrypted, keys: dict[str, AgeKey],
                                                      shared_tmp_path: Path, pg15: PgCluster) -> None:
    stored = shared_tmp_path / "backup.dump.age"
    stored.write_bytes(encrypted.object(encrypted.key))
    plain = shared_tmp_path / "x.dump"
    subprocess.run([_age_tool("age"), "-d", "-i", str(keys["escrow"].identity_file), "-o", str(plain), str(stored)],
                   check=True, capture_output=True, timeout=120)
    listing = subprocess.run([str(pg15.bin_dir / "pg_restore"), "--list", str(plain)], capture_output=True,
                             text=True, timeout=120)
    assert (listing.returncode, "TABLE DATA public audit_log" in listing.stdout,
            hashlib.sha256(plain.read_bytes()).hexdigest()) == (0, True, encrypted.manifest["dump"]["plaintext_sha256"])


# ------------------------------------------------------------------ operator commands without the identity
def test_verify_checks_the_ciphertext_without_an_identity(encrypted: Encrypted) -> None:
    run = cli.run_cli(["verify", "latest"], encrypted.env())
    assert (run.returncode, "MISMATCH" in run.stdout, "encrypted (age)" in run.stdout) == (0, False, True), str(run)


def test_check_lists_the_recipients_each_backup_needs(encrypted: Encrypted, keys: dict[str, AgeKey]) -> None:
    run = cli.run_cli(["check", "--max-age", "1h", "--recipients"], encrypted.env())
    line = next((line for line in run.stdout.splitlines() if line.strip().startswith(encrypted.manifest["backup_id"])), "")
    assert (run.returncode, keys["ops"].recipient in line, keys["escrow"].recipient in line) == (0, True, True), str(run)


# ------------------------------------------------------------------ restore
def test_the_runbook_script_restores_with_the_identity(encrypted: Encrypted, keys: dict[str, AgeKey],
                                                       source15: postgres.Database, pg15: PgCluster) -> None:
    target = postgres.new_database(pg15, "age_restore")
    env = encrypted.env(AGENT_BOM_RESTORE_IDENTITY_FILE=str(keys["ops"].identity_file))
    run = cli.restore_script(env, encrypted.uri, pg15.superuser_url(target), cli.DEFAULT_REGION)
    assert (run.returncode, "VERIFIED" in run.stdout,
            helpers.tenant_counts(pg15, target, "audit_log")) == (0, True, source15.audit_rows), str(run)


@pytest.fixture
def occupied_target(pg15: PgCluster) -> str:
    """A non-empty target (one marker table) that a --clean restore would replace."""
    target = postgres.new_database(pg15, "age_occupied")
    pg15.run_sql("CREATE TABLE still_here (id int); INSERT INTO still_here VALUES (1)", target)
    return target


def _clean_restore(encrypted: Encrypted, pg15: PgCluster, target: str, *args: str, **env: str) -> cli.Run:
    return cli.restore(encrypted.env(**env), encrypted.uri, pg15.superuser_url(target), "--clean",
                       "--confirm-target", target, *args)


@pytest.fixture(scope="module")
def refused(encrypted: Encrypted, keys: dict[str, AgeKey], pg15: PgCluster) -> tuple[cli.Run, str]:
    """A --clean restore over a non-empty target with a stranger's identity."""
    target = postgres.new_database(pg15, "age_refused")
    pg15.run_sql("CREATE TABLE still_here (id int); INSERT INTO still_here VALUES (1)", target)
    run = _clean_restore(encrypted, pg15, target, AGENT_BOM_RESTORE_IDENTITY_FILE=str(keys["stranger"].identity_file))
    return run, target


def test_a_wrong_identity_is_refused_naming_the_recipients(refused: tuple[cli.Run, str], keys: dict[str, AgeKey]) -> None:
    run, _ = refused
    assert (run.returncode, keys["ops"].recipient in run.error_message,
            keys["escrow"].recipient in run.error_message) == (8, True, True), str(run)


def test_a_wrong_identity_leaves_the_target_unchanged(refused: tuple[cli.Run, str], pg15: PgCluster) -> None:
    _, target = refused
    with postgres.connect(pg15, target) as conn:
        assert postgres.user_relations(conn) == [("public", "still_here", "r")]


# ------------------------------------------------------------------ moto only: the costlier paths
@pytest.fixture(scope="module")
def on_moto(request: pytest.FixtureRequest, source15: postgres.Database, keys: dict[str, AgeKey]) -> Iterator[Encrypted]:
    store = store_for("moto", request)
    with store.bucket("abb-age-moto") as bucket:
        run = cli.backup(store.job_env(bucket, source15.url, AGENT_BOM_BACKUP_ENCRYPT_TO=keys["ops"].recipient))
        assert run.returncode == 0, str(run)
        key = run.uri.removeprefix(f"s3://{bucket}/")
        yield Encrypted(store, bucket, run, key, buckets.read_manifest(store.client(), bucket, key))


def test_a_dry_run_plans_the_decryption(on_moto: Encrypted, keys: dict[str, AgeKey], pg15: PgCluster) -> None:
    target = postgres.new_database(pg15, "age_dry_run")
    run = cli.restore(on_moto.env(AGENT_BOM_RESTORE_IDENTITY_FILE=str(keys["ops"].identity_file)), on_moto.uri,
                      pg15.superuser_url(target), "--dry-run")
    steps = [r.get("step", "") for r in run.log if r.get("message") == "plan"]
    assert (run.returncode, any(step.startswith("decrypt it with the age identity") for step in steps)) == (0, True), str(run)


def test_verify_deep_decrypts_with_the_identity(on_moto: Encrypted, keys: dict[str, AgeKey], pg15: PgCluster) -> None:
    run = cli.run_cli(["verify", on_moto.uri, "--deep", "--identity", str(keys["ops"].identity_file)],
                      on_moto.env(AGENT_BOM_VERIFY_SCRATCH_URL=pg15.superuser_url()))
    assert (run.returncode, "restore into" in run.stdout, "MISMATCH" in run.stdout) == (0, True, False), str(run)


def test_no_identity_is_refused(on_moto: Encrypted, pg15: PgCluster, occupied_target: str) -> None:
    run = _clean_restore(on_moto, pg15, occupied_target)
    assert (run.returncode, "no identity was given" in run.error_message) == (8, True), str(run)


def test_verify_deep_without_the_identity_is_refused(on_moto: Encrypted, pg15: PgCluster) -> None:
    run = cli.run_cli(["verify", on_moto.uri, "--deep"], on_moto.env(AGENT_BOM_VERIFY_SCRATCH_URL=pg15.superuser_url()))
    assert run.returncode == 8, str(run)


def test_a_truncated_ciphertext_fails_before_pg_restore(on_moto: Encrypted, keys: dict[str, AgeKey],
                                                       pg15: PgCluster, occupied_target: str) -> None:
    """The dump cut short and its manifest rewritten to match (what a writer holding the
    recipient, or a broken copy tool, could leave): the ciphertext checks out, decryption
    does not, and the target keeps its table."""
    client = on_moto.store.client()
    with on_moto.store.bucket("abb-age-cut") as bucket:
        data = on_moto.object(on_moto.key)[:-300]
        manifest = dict(on_moto.manifest)
        manifest["dump"] = {**manifest["dump"], "size": len(data), "sha256": buckets.sha256(data)}
        buckets.put_object(client, bucket, on_moto.key, data)
        client.copy_object(Bucket=bucket, Key=buckets.roles_key(on_moto.key),
                           CopySource={"Bucket": on_moto.bucket, "Key": buckets.roles_key(on_moto.key)})
        buckets.put_object(client, bucket, buckets.manifest_key(on_moto.key), json.dumps(manifest).encode())
        run = cli.restore(on_moto.store.job_env(bucket, AGENT_BOM_RESTORE_IDENTITY_FILE=str(keys["ops"].identity_file)),
                          f"s3://{bucket}/{on_moto.key}", pg15.superuser_url(occupied_target), "--clean",
                          "--confirm-target", occupied_target)
    with postgres.connect(pg15, occupied_target) as conn:
        relations = postgres.user_relations(conn)
    assert (run.returncode, "does not decrypt" in run.error_message, "pg_restore was not run" in run.error_message,
            relations) == (7, True, True, [("public", "still_here", "r")]), str(run)


def test_the_safety_backup_is_encrypted_like_the_backup(on_moto: Encrypted, keys: dict[str, AgeKey], pg15: PgCluster,
                                                        occupied_target: str, shared_tmp_path: Path) -> None:
    safety = shared_tmp_path / "safety"
    run = cli.restore(on_moto.env(AGENT_BOM_RESTORE_IDENTITY_FILE=str(keys["ops"].identity_file)), on_moto.uri,
                      pg15.superuser_url(occupied_target), "--clean", "--confirm-target", occupied_target,
                      "--safety-backup-dir", str(safety))
    assert run.returncode == 0, str(run)
    [written] = list(safety.iterdir())
    plain = subprocess.run([_age_tool("age"), "-d", "-i", str(keys["ops"].identity_file), str(written)],
                           capture_output=True, timeout=120)
    assert (written.name.endswith(".dump.age"), plain.returncode, plain.stdout[:5]) == (True, 0, b"PGDMP")


def test_the_safety_backup_in_the_bucket_is_encrypted_and_goes_back_with_the_identity(
        on_moto: Encrypted, keys: dict[str, AgeKey], pg15: PgCluster, occupied_target: str,
        shared_tmp_path: Path) -> None:
    """--safety-backup-to-bucket: the safety backup under <prefix>/safety/ is encrypted to
    the restored backup's recipients (age dump and roles objects, the manifest records
    them), the report's go-back names --identity, and that restore brings the table back."""
    env = on_moto.env(AGENT_BOM_RESTORE_IDENTITY_FILE=str(keys["ops"].identity_file))
    report_path = shared_tmp_path / "safety-in-bucket-report.json"
    run = cli.restore(env, on_moto.uri, pg15.superuser_url(occupied_target), "--clean", "--confirm-target",
                      occupied_target, "--safety-backup-to-bucket", "--report", str(report_path))
    assert run.returncode == 0, str(run)
    report = json.loads(report_path.read_text())
    key = report["safety_backup"].removeprefix(f"s3://{on_moto.bucket}/")
    manifest = buckets.read_manifest(on_moto.store.client(), on_moto.bucket, key)
    assert ("/safety/" in key, manifest.get("encryption"), on_moto.object(key)[:len(AGE_HEADER)],
            on_moto.object(buckets.roles_key(key))[:len(AGE_HEADER)], "--identity" in report["recovery"]) == (
        True, {"format": "age", "recipients": [keys["ops"].recipient]}, AGE_HEADER, AGE_HEADER, True)
    back = cli.restore(env, report["safety_backup"], pg15.superuser_url(occupied_target), "--clean",
                       "--confirm-target", occupied_target, "--approval", "INC-30", "--no-safety-backup")
    with postgres.connect(pg15, occupied_target) as conn:
        relations = postgres.user_relations(conn)
    assert (back.returncode, relations) == (0, [("public", "still_here", "r")]), str(back)


def test_a_malformed_recipient_is_refused_before_anything(s3, source15: postgres.Database) -> None:  # noqa: ANN001
    with buckets.fresh_bucket(s3, "abb-age-bad") as bucket:
        run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source15.url, AGENT_BOM_BACKUP_ENCRYPT_TO="age1oops"))
        keys = buckets.object_keys(s3.client(), bucket)
    assert (run.returncode, len(run.errors), "age1oops" in run.error_message, keys) == (3, 1, True, []), str(run)

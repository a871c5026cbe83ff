"""A backup of the seeded multi-tenant database: the objects, their checksums, the
manifest's counts against the database, the runbook's object name and encryption."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from agent_bom_backup import pgroles
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer

TENANT_TABLES = ("api_keys", "audit_log", "scan_jobs", "teams")


def _manifest_tables(backup: cli.Backup) -> dict[str, dict]:
    return {f"{t['schema']}.{t['name']}": t for t in backup.manifest["tables"]}


def test_dump_roles_manifest_and_the_claim_are_written(s3: MotoServer, backup15: cli.Backup) -> None:
    stem = backup15.key.removesuffix(".dump")
    written = [k for k in buckets.object_keys(s3.client(), backup15.bucket) if k.startswith(stem)]
    assert written == sorted([*backup15.keys, backup15.claim_key])


def test_object_key_has_the_runbook_format(backup15: cli.Backup) -> None:
    assert helpers.DUMP_KEY.match(backup15.key), backup15.key


def test_stdout_is_the_backup_uri(backup15: cli.Backup) -> None:
    assert backup15.run.stdout.strip() == backup15.uri


def test_manifest_row_counts_equal_the_database(backup15: cli.Backup, source15: postgres.Database) -> None:
    counts = {name: t["rows"] for name, t in _manifest_tables(backup15).items()}
    assert counts == helpers.table_counts(source15.cluster, source15.name)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_manifest_tenant_counts_equal_the_database(backup15: cli.Backup, source15: postgres.Database, table: str) -> None:
    tenants = _manifest_tables(backup15)[f"public.{table}"]["tenants"]
    assert tenants == helpers.tenant_counts(source15.cluster, source15.name, table)


def test_table_without_tenant_column_is_counted_whole(backup15: cli.Backup) -> None:
    settings = _manifest_tables(backup15)["public.settings"]
    assert (settings["rows"], settings["tenants"]) == (2, None)


def test_audit_log_tenants_are_the_seeded_ones(backup15: cli.Backup, source15: postgres.Database) -> None:
    assert _manifest_tables(backup15)["public.audit_log"]["tenants"] == source15.audit_rows


def test_dump_object_size_and_sha256_equal_the_manifest(s3: MotoServer, backup15: cli.Backup) -> None:
    data = buckets.get_object(s3.client(), backup15.bucket, backup15.key)
    assert (len(data), buckets.sha256(data)) == (backup15.manifest["dump"]["size"], backup15.manifest["dump"]["sha256"])


def test_roles_object_sha256_equals_the_manifest(s3: MotoServer, backup15: cli.Backup) -> None:
    data = buckets.get_object(s3.client(), backup15.bucket, buckets.roles_key(backup15.key))
    assert (backup15.manifest["roles"]["key"], buckets.sha256(data)) == (
        buckets.roles_key(backup15.key), backup15.manifest["roles"]["sha256"])


def test_roles_object_holds_the_roles_the_policies_name(s3: MotoServer, backup15: cli.Backup) -> None:
    text = buckets.get_object(s3.client(), backup15.bucket, buckets.roles_key(backup15.key)).decode()
    assert all(f"CREATE ROLE {role};" in text for role in ("agent_bom_app", "agent_bom_owner", "agent_bom_readonly"))


def test_roles_object_holds_no_password(s3: MotoServer, backup15: cli.Backup) -> None:
    text = buckets.get_object(s3.client(), backup15.bucket, buckets.roles_key(backup15.key)).decode()
    assert "PASSWORD" not in text


def test_manifest_names_the_roles_policies_need(backup15: cli.Backup) -> None:
    assert backup15.manifest["referenced_roles"]["policies"] == ["agent_bom_app", "agent_bom_owner", "agent_bom_readonly"]


def test_claim_is_written_first_and_the_manifest_last(s3: MotoServer, backup15: cli.Backup) -> None:
    completed = helpers.completed_objects(s3, backup15.bucket, backup15.key.removesuffix(".dump"))
    assert completed == [backup15.claim_key, *backup15.keys]


def test_manifest_holds_no_credentials(s3: MotoServer, backup15: cli.Backup, source15: postgres.Database) -> None:
    text = buckets.get_object(s3.client(), backup15.bucket, buckets.manifest_key(backup15.key)).decode()
    assert source15.cluster.superuser_password not in text


def test_manifest_records_the_source_database(backup15: cli.Backup, source15: postgres.Database) -> None:
    assert (backup15.manifest["source"]["database"], backup15.manifest["source"]["server_major"]) == (source15.name, 15)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["dump", "roles", "manifest"])
def test_sse_s3_is_recorded_on_every_object(s3: MotoServer, backup15: cli.Backup, part: int) -> None:
    head = s3.client().head_object(Bucket=backup15.bucket, Key=backup15.keys[part])
    assert head["ServerSideEncryption"] == "AES256"


def test_claim_is_encrypted_too(s3: MotoServer, backup15: cli.Backup) -> None:
    head = s3.client().head_object(Bucket=backup15.bucket, Key=backup15.claim_key)
    assert head["ServerSideEncryption"] == "AES256"


def test_manifest_records_the_encryption_the_store_confirmed(backup15: cli.Backup) -> None:
    dump, roles, _ = backup15.keys
    assert backup15.manifest["storage"]["encryption_confirmed"] == {
        "requested": "AES256", "mode": "AES256", "kms_key_id": None,
        "objects": {backup15.claim_key: ["PutObject"], dump: ["CreateMultipartUpload", "CompleteMultipartUpload"],
                    roles: ["PutObject"]},
    }


@pytest.fixture(scope="module")
def kms_backup(s3: MotoServer, source15: postgres.Database) -> Iterator[tuple[cli.Backup, str]]:
    """A backup with SSE-KMS under a fresh moto KMS key; (backup, key id)."""
    key_id = s3.create_kms_key()
    with buckets.fresh_bucket(s3, "abb-kms") as bucket:
        yield cli.take_backup(
            s3, bucket, source15.url, AGENT_BOM_BACKUP_SSE="aws:kms", AGENT_BOM_BACKUP_KMS_KEY_ID=key_id
        ), key_id


@pytest.mark.parametrize("part", [0, 1, 2], ids=["dump", "roles", "manifest"])
def test_sse_kms_is_recorded_on_every_object(s3: MotoServer, kms_backup: tuple[cli.Backup, str], part: int) -> None:
    backup, _ = kms_backup
    head = s3.client().head_object(Bucket=backup.bucket, Key=backup.keys[part])
    assert head["ServerSideEncryption"] == "aws:kms"


def test_sse_kms_key_is_the_configured_one(s3: MotoServer, kms_backup: tuple[cli.Backup, str]) -> None:
    backup, key_id = kms_backup
    head = s3.client().head_object(Bucket=backup.bucket, Key=backup.key)
    assert head["SSEKMSKeyId"].endswith(key_id)


def test_manifest_records_the_kms_key(kms_backup: tuple[cli.Backup, str]) -> None:
    backup, key_id = kms_backup
    assert (backup.manifest["storage"]["sse"], backup.manifest["storage"]["kms_key_id"]) == ("aws:kms", key_id)


def test_manifest_records_the_kms_key_the_store_confirmed(kms_backup: tuple[cli.Backup, str]) -> None:
    backup, key_id = kms_backup
    confirmed = backup.manifest["storage"]["encryption_confirmed"]
    assert (confirmed["mode"], confirmed["kms_key_id"], sorted(confirmed["objects"])) == (
        "aws:kms", key_id, sorted([backup.claim_key, backup.keys[0], backup.keys[1]]))


def test_manifest_owners_leave_out_a_trusted_extensions_members(pg15: PgCluster) -> None:
    """A database owner's ``CREATE EXTENSION pg_trgm`` (trusted) leaves the extension's member
    functions owned by the bootstrap superuser; pg_dump gives them no owner (it dumps ``CREATE
    EXTENSION``), so the roles a restore must act as are the database owner's alone."""
    role, name = postgres.unique_name("ext_owner"), postgres.unique_name("trusted_ext")
    pg15.run_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'ext-owner-password'")
    pg15.create_database(name, owner=role)
    with psycopg.connect(pg15.url(name, role, "ext-owner-password"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_trgm")
        conn.execute("CREATE TABLE words (word text)")
        conn.execute("CREATE INDEX ON words USING gin (word gin_trgm_ops)")
        assert pgroles.referenced_roles(conn)["owners"] == [role]

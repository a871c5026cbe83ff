"""``--storage-class`` (chart: ``destination.storageClass``) applies to the dump only: the
manifest, roles and claim objects stay readable, so a GLACIER dump is still a listed
backup, in the catalog's ``archived`` state (restore then says to restore the dump from the
archive first), never "no complete backup"."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres


@pytest.fixture(scope="module")
def archived(s3: MotoServer, source15: postgres.Database) -> Iterator[tuple[cli.Backup, dict[str, str]]]:
    with buckets.fresh_bucket(s3, "abb-glacier") as bucket:
        backup = cli.take_backup(s3, bucket, source15.url, AGENT_BOM_BACKUP_STORAGE_CLASS="GLACIER")
        listed = s3.client().list_objects_v2(Bucket=bucket)["Contents"]
        yield backup, {o["Key"]: o.get("StorageClass", "STANDARD") for o in listed}


def test_only_the_dump_takes_the_storage_class(archived: tuple[cli.Backup, dict[str, str]]) -> None:
    backup, classes = archived
    dump, roles, manifest = backup.keys
    assert classes == {dump: "GLACIER", roles: "STANDARD", manifest: "STANDARD", backup.claim_key: "STANDARD"}


def test_list_shows_the_backup_as_archived_not_missing(
    s3: MotoServer, archived: tuple[cli.Backup, dict[str, str]]
) -> None:
    backup, _ = archived
    run = cli.run_cli(["list", "--json"], cli.job_env(s3.endpoint_url, backup.bucket))
    listed = json.loads(run.stdout)["backups"] if run.returncode == 0 else []
    assert [(b["uri"], b["state"]) for b in listed] == [(backup.uri, "archived")], str(run)


def test_manifest_records_the_dump_storage_class(archived: tuple[cli.Backup, dict[str, str]]) -> None:
    backup, _ = archived
    assert backup.manifest["storage"]["storage_class"] == "GLACIER"

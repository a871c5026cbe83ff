"""``restore latest`` (and a prefix URI) resolve to the newest *complete* backup: a newer
dump without its manifest is skipped, never restored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.s3server import DEFAULT_REGION, MotoServer

INCOMPLETE_KEY = f"{cli.PREFIX}/agent-bom-29991231T235959Z.dump"


@pytest.fixture(scope="module")
def complete(s3: MotoServer, source15: postgres.Database) -> Iterator[cli.Backup]:
    """A bucket holding one complete backup and a newer one whose job died after the dump."""
    with buckets.fresh_bucket(s3, "abb-latest") as bucket:
        backup = cli.take_backup(s3, bucket, source15.url)
        client = s3.client()
        buckets.put_object(client, bucket, INCOMPLETE_KEY, buckets.get_object(client, bucket, backup.key))
        yield backup


@pytest.fixture(scope="module", params=["latest", "prefix-uri"])
def latest(request: pytest.FixtureRequest, s3: MotoServer, source15: postgres.Database, complete: cli.Backup,
           tmp_root: Path) -> helpers.RestoreOf:
    target = postgres.new_database(source15.cluster, "target")
    report = tmp_root / postgres.unique_name("report")
    uri = "latest" if request.param == "latest" else f"s3://{complete.bucket}/{cli.PREFIX}/"
    run = cli.restore_script(cli.job_env(s3.endpoint_url, complete.bucket), uri, source15.cluster.superuser_url(target),
                                 DEFAULT_REGION, "--report", str(report))
    return helpers.RestoreOf(complete, run, json.loads(report.read_text()))


def test_latest_restores_the_newest_complete_backup(latest: helpers.RestoreOf) -> None:
    assert (latest.run.returncode, latest.report["backup_uri"]) == (0, latest.backup.uri), str(latest.run)


def test_latest_says_it_skipped_the_incomplete_backup(latest: helpers.RestoreOf) -> None:
    skipped = [r for r in latest.run.log if r["level"] == "warning" and r["message"].startswith("skipping incomplete")]
    assert [r["backup"] for r in skipped] == ["agent-bom-29991231T235959Z"]


def test_latest_restore_is_verified(latest: helpers.RestoreOf) -> None:
    assert latest.report["status"] == "verified"


def test_latest_without_any_complete_backup_fails(s3: MotoServer, bucket: str, source15: postgres.Database) -> None:
    buckets.put_object(s3.client(), bucket, INCOMPLETE_KEY, b"not a dump")
    target = postgres.new_database(source15.cluster, "target")
    run = cli.restore(cli.job_env(s3.endpoint_url, bucket), "latest", source15.cluster.superuser_url(target))
    assert (run.returncode, run.error_message.startswith("no complete backup under")) == (7, True), str(run)


# ------------------------------------------------------------------ the newest backup cannot be used
NEWER_ID = "agent-bom-29991231T235958Z"


def _newer_copy(client: Any, backup: cli.Backup, bucket: str, *, manifest: bytes | None = None,
                storage_class: str | None = None) -> None:
    """``backup`` copied under the newer id NEWER_ID; optionally with another manifest body,
    or its dump in another storage class."""
    dump_key, roles_key, manifest_key = (f"{cli.PREFIX}/{NEWER_ID}{suffix}" for suffix in (buckets.DUMP, buckets.ROLES,
                                                                                           buckets.MANIFEST))
    extra = {"StorageClass": storage_class} if storage_class else {}
    client.put_object(Bucket=bucket, Key=dump_key, Body=buckets.get_object(client, backup.bucket, backup.key), **extra)
    client.put_object(Bucket=bucket, Key=roles_key, Body=buckets.get_object(client, backup.bucket, backup.keys[1]))
    if manifest is None:
        data = dict(backup.manifest)
        data.update(backup_id=NEWER_ID, dump={**data["dump"], "key": dump_key}, roles={**data["roles"], "key": roles_key})
        manifest = json.dumps(data).encode()
    client.put_object(Bucket=bucket, Key=manifest_key, Body=manifest)


@dataclass(frozen=True)
class Unusable:
    kind: str
    complete: cli.Backup
    refused: cli.Run
    before: dict[str, Any]
    after: dict[str, Any]
    older: cli.Run
    report: dict[str, Any]


@pytest.fixture(scope="module", params=["unreadable", "archived"])
def unusable(request: pytest.FixtureRequest, s3: MotoServer, source15: postgres.Database, tmp_root: Path) -> Iterator[Unusable]:
    """A complete backup, and a newer one whose manifest does not parse (unreadable) or
    whose dump is in GLACIER (archived): `restore latest` stops at it; --allow-older
    restores the complete one and records what it passed over."""
    with buckets.fresh_bucket(s3, "abb-unusable") as bucket:
        complete = cli.take_backup(s3, bucket, source15.url)
        client = s3.client()
        if request.param == "unreadable":
            _newer_copy(client, complete, bucket, manifest=b"{not json")
        else:
            _newer_copy(client, complete, bucket, storage_class="GLACIER")
        cluster = source15.cluster
        target = postgres.new_database(cluster, "target")
        env = cli.job_env(s3.endpoint_url, bucket)
        before = helpers.database_state(cluster, target)
        refused = cli.restore(env, "latest", cluster.superuser_url(target))
        after = helpers.database_state(cluster, target)
        report = tmp_root / postgres.unique_name("report")
        older = cli.restore({**env, "AGENT_BOM_RESTORE_ALLOW_OLDER": "true"}, "latest", cluster.superuser_url(target),
                            "--report", str(report))
        yield Unusable(request.param, complete, refused, before, after, older, json.loads(report.read_text()))


def test_latest_stops_at_an_unusable_newest_backup(unusable: Unusable) -> None:
    assert unusable.refused.returncode == 8, str(unusable.refused)


def test_latest_names_the_unusable_backup_and_why(unusable: Unusable) -> None:
    message = unusable.refused.error_message
    assert f", {NEWER_ID}, is {unusable.kind}: " in message and "--allow-older" in message, message


def test_latest_stopping_leaves_the_target_unchanged(unusable: Unusable) -> None:
    assert unusable.after == unusable.before


def test_allow_older_restores_the_newest_complete_backup(unusable: Unusable) -> None:
    assert (unusable.older.returncode, unusable.report["backup_uri"]) == (0, unusable.complete.uri), str(unusable.older)


def test_allow_older_records_the_skipped_backup(unusable: Unusable) -> None:
    assert [(s["backup_id"], s["state"]) for s in unusable.report["skipped_backups"]] == [(NEWER_ID, unusable.kind)]


def test_allow_older_records_the_wider_data_loss_window(unusable: Unusable) -> None:
    assert unusable.report["data_loss_note"].startswith("--allow-older passed over 1 newer backup(s)")

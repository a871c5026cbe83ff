"""``restore latest`` (and a prefix URI) resolve to the newest *complete* backup: a newer
dump without its manifest is skipped, never restored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import cli
from devstack.s3server import DEFAULT_REGION, MotoServer

INCOMPLETE_KEY = f"{cli.PREFIX}/agent-bom-29991231T235959Z.dump"


@dataclass(frozen=True)
class Latest:
    complete: cli.Backup
    run: cli.Run
    report: dict[str, Any]


@pytest.fixture(scope="module")
def complete(s3: MotoServer, source15: cli.Database) -> Iterator[cli.Backup]:
    """A bucket holding one complete backup and a newer one whose job died after the dump."""
    with cli.fresh_bucket(s3, "abb-latest") as bucket:
        backup = cli.take_backup(s3, bucket, source15.url)
        client = s3.client()
        cli.put_object(client, bucket, INCOMPLETE_KEY, cli.get_object(client, bucket, backup.key))
        yield backup


@pytest.fixture(scope="module", params=["latest", "prefix-uri"])
def latest(request: pytest.FixtureRequest, s3: MotoServer, source15: cli.Database, complete: cli.Backup,
           tmp_root: Path) -> Latest:
    target = cli.new_database(source15.cluster, "target")
    report = tmp_root / cli.unique_name("report")
    uri = "latest" if request.param == "latest" else f"s3://{complete.bucket}/{cli.PREFIX}/"
    run = cli.restore_script(cli.job_env(s3.endpoint_url, complete.bucket), uri, source15.cluster.superuser_url(target),
                                 DEFAULT_REGION, "--report", str(report))
    return Latest(complete, run, json.loads(report.read_text()))


def test_latest_restores_the_newest_complete_backup(latest: Latest) -> None:
    assert (latest.run.returncode, latest.report["backup_uri"]) == (0, latest.complete.uri), str(latest.run)


def test_latest_says_it_skipped_the_incomplete_backup(latest: Latest) -> None:
    skipped = [r for r in latest.run.log if r["level"] == "warning" and r["message"].startswith("skipping incomplete")]
    assert [r["backup"] for r in skipped] == ["agent-bom-29991231T235959Z"]


def test_latest_restore_is_verified(latest: Latest) -> None:
    assert latest.report["status"] == "verified"


def test_latest_without_any_complete_backup_fails(s3: MotoServer, bucket: str, source15: cli.Database) -> None:
    cli.put_object(s3.client(), bucket, INCOMPLETE_KEY, b"not a dump")
    target = cli.new_database(source15.cluster, "target")
    run = cli.restore(cli.job_env(s3.endpoint_url, bucket), "latest", source15.cluster.superuser_url(target))
    assert (run.returncode, run.error_message.startswith("no complete backup under")) == (7, True), str(run)

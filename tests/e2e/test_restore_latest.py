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
from tests.e2e.conftest import Source
from tests.support.s3server import DEFAULT_REGION, MotoServer

INCOMPLETE_KEY = f"{helpers.PREFIX}/agent-bom-29991231T235959Z.dump"


@dataclass(frozen=True)
class Latest:
    complete: helpers.Backup
    run: helpers.Run
    report: dict[str, Any]


@pytest.fixture(scope="module")
def complete(s3: MotoServer, source15: Source) -> Iterator[helpers.Backup]:
    """A bucket holding one complete backup and a newer one whose job died after the dump."""
    with helpers.fresh_bucket(s3, "abb-latest") as bucket:
        backup = helpers.take_backup(s3, bucket, source15.url)
        helpers.put_object(s3, bucket, INCOMPLETE_KEY, helpers.get_object(s3, bucket, backup.key))
        yield backup


@pytest.fixture(scope="module", params=["latest", "prefix-uri"])
def latest(request: pytest.FixtureRequest, s3: MotoServer, source15: Source, complete: helpers.Backup,
           tmp_root: Path) -> Latest:
    target = helpers.new_database(source15.cluster, "target")
    report = tmp_root / helpers.unique_name("report")
    uri = "latest" if request.param == "latest" else f"s3://{complete.bucket}/{helpers.PREFIX}/"
    run = helpers.restore_script(helpers.s3_env(s3, complete.bucket), uri, source15.cluster.superuser_url(target),
                                 DEFAULT_REGION, "--report", str(report))
    return Latest(complete, run, json.loads(report.read_text()))


def test_latest_restores_the_newest_complete_backup(latest: Latest) -> None:
    assert (latest.run.returncode, latest.report["backup_uri"]) == (0, latest.complete.uri), str(latest.run)


def test_latest_says_it_skipped_the_incomplete_backup(latest: Latest) -> None:
    skipped = [r for r in latest.run.log if r["level"] == "warning" and r["message"].startswith("skipping incomplete")]
    assert [r["backup"] for r in skipped] == ["agent-bom-29991231T235959Z"]


def test_latest_restore_is_verified(latest: Latest) -> None:
    assert latest.report["status"] == "verified"


def test_latest_without_any_complete_backup_fails(s3: MotoServer, bucket: str, source15: Source) -> None:
    helpers.put_object(s3, bucket, INCOMPLETE_KEY, b"not a dump")
    target = helpers.new_database(source15.cluster, "target")
    run = helpers.restore(helpers.s3_env(s3, bucket), "latest", source15.cluster.superuser_url(target))
    assert (run.returncode, run.error_message.startswith("no complete backup under")) == (7, True), str(run)

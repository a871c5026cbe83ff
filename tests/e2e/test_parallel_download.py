"""Restore downloads (issue 18, item 5): a dump starts as one stream; when it is at least
``--parallel-download-threshold`` large and a ranged GET answers about as fast as a HEAD,
the rest comes as parallel ranged GETs written at their offsets, hashed in order as the
ranges complete (storage.download). Ceph RGW serves ranges cheaply; a store whose ranged
GETs are slow (played by a proxy in front of moto) keeps its one stream: the probe measures
it, the store is never known by its name. A dump that does not match its manifest is refused
before the target is touched, whichever way it came. Speed is measured in bench/, not here."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_bom_backup.log import setup_logging
from agent_bom_backup.storage import DOWNLOAD_RANGE_SIZE, Storage, StorageConfig
from devstack.pgcluster import PgCluster
from devstack.rgw import RgwServer
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from tests.support.s3proxy import Rule, S3Proxy
from tests.support.stores import Store, store_for

MiB = 1024 * 1024
KEY = "agent-bom/postgres/agent-bom-20260101T000000Z.dump"
#: the stream's first MiBs, then (when the probe has answered) ranges for the rest
RANGED = os.urandom(4 * DOWNLOAD_RANGE_SIZE + 7 * MiB + 12345)
PARALLEL = "downloading in parallel ranges"
WHOLE_OBJECT = "the store reads the whole object for a ranged GET: downloading in one stream"


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    content: bytes
    messages: list[str]


def download(storage: Storage, path: Path, threshold: int | None) -> Downloaded:
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)
    try:
        size, digest = storage.download(KEY, path, parallel_threshold=threshold)
    finally:
        logging.getLogger("agent_bom_backup").handlers.clear()
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    return Downloaded(size, digest, path.read_bytes(), messages)


def storage_for(bucket: str, endpoint_url: str) -> Storage:
    return Storage(StorageConfig(bucket=bucket, region="us-east-1", endpoint_url=endpoint_url, path_style=True))


@pytest.fixture(scope="module")
def rgw_object(rgw: RgwServer) -> Iterator[Storage]:
    with buckets.fresh_bucket(rgw, "abb-ranges") as bucket:
        rgw.client().put_object(Bucket=bucket, Key=KEY, Body=RANGED)
        yield storage_for(bucket, rgw.endpoint_url)
    rgw.collect_garbage()


@pytest.fixture(scope="module")
def ranged(rgw_object: Storage, tmp_path_factory: pytest.TempPathFactory) -> Downloaded:
    return download(rgw_object, tmp_path_factory.mktemp("ranged") / "dump", threshold=MiB)


def test_rgw_serves_the_download_in_parallel_ranges(ranged: Downloaded) -> None:
    assert PARALLEL in ranged.messages


def test_the_ranges_make_the_object(ranged: Downloaded) -> None:
    assert ranged.content == RANGED


def test_the_ranges_are_hashed_in_order(ranged: Downloaded) -> None:
    assert (ranged.size, ranged.sha256) == (len(RANGED), hashlib.sha256(RANGED).hexdigest())


def test_below_the_threshold_one_stream(rgw_object: Storage, tmp_path: Path) -> None:
    small = download(rgw_object, tmp_path / "dump", threshold=len(RANGED) + 1)
    assert (PARALLEL in small.messages, small.sha256) == (False, hashlib.sha256(RANGED).hexdigest())


def test_no_threshold_one_stream(rgw_object: Storage, tmp_path: Path) -> None:
    assert PARALLEL not in download(rgw_object, tmp_path / "dump", threshold=None).messages


#: a store slow at ranges: its ranged GET answers a second late (a HEAD, ~5 ms); the stream
#: answers later still, so the probe has answered when the stream's first chunk is read
SLOW_RANGE_S = 1.0
SLOW_STREAM_S = 2.5


@pytest.fixture(scope="module")
def slow_ranges_download(s3: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Downloaded, bytes]]:
    """A dump of a few ranges from a store whose ranged GETs are slow (a proxy in front of moto)."""
    data = os.urandom(3 * DOWNLOAD_RANGE_SIZE)
    rules = [Rule(method="GET", path_suffix=KEY, ranged=True, delay_s=SLOW_RANGE_S),
             Rule(method="GET", path_suffix=KEY, ranged=False, delay_s=SLOW_STREAM_S)]
    with buckets.fresh_bucket(s3, "abb-slow-ranges") as bucket, S3Proxy(s3.endpoint_url, rules=rules) as proxy:
        s3.client().put_object(Bucket=bucket, Key=KEY, Body=data)
        yield download(storage_for(bucket, proxy.endpoint_url), tmp_path_factory.mktemp("slow") / "dump", MiB), data


def test_a_store_slow_at_ranges_keeps_one_stream(slow_ranges_download: tuple[Downloaded, bytes]) -> None:
    downloaded, _ = slow_ranges_download
    assert (WHOLE_OBJECT in downloaded.messages, PARALLEL in downloaded.messages) == (True, False)


def test_the_one_stream_is_the_object(slow_ranges_download: tuple[Downloaded, bytes]) -> None:
    downloaded, data = slow_ranges_download
    assert downloaded.sha256 == hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- restores
@pytest.fixture(scope="module")
def rgw_store(request: pytest.FixtureRequest) -> Store:
    return store_for("rgw-http", request)


@pytest.fixture(scope="module")
def ranged_source(pg15: PgCluster) -> postgres.Database:
    """~50 MiB of row data: with compression none, a dump of a few ranges."""
    return postgres.blob_database(pg15, "ranged", 50)


@pytest.fixture(scope="module")
def rgw_backup(rgw_store: Store, ranged_source: postgres.Database) -> Iterator[tuple[str, str]]:
    with rgw_store.bucket("abb-ranged-restore") as bucket:
        run = cli.backup(rgw_store.job_env(bucket, ranged_source.url), "--compression", "none")
        assert run.returncode == 0, str(run)
        assert run.log[-1]["bytes"] > 3 * DOWNLOAD_RANGE_SIZE, "the dump should span a few ranges"
        yield bucket, run.uri


def test_a_restore_downloads_in_ranges_and_verifies(rgw_store: Store, rgw_backup: tuple[str, str],
                                                    pg15: PgCluster) -> None:
    bucket, uri = rgw_backup
    target = postgres.new_database(pg15, "ranged")
    run = cli.restore(rgw_store.job_env(bucket), uri, pg15.superuser_url(target),
                      "--parallel-download-threshold", "1")
    assert (run.returncode, PARALLEL in [r["message"] for r in run.log]) == (0, True), str(run)


def test_a_corrupted_dump_in_ranges_is_refused_before_the_target_is_touched(
        rgw_store: Store, rgw_backup: tuple[str, str], pg15: PgCluster) -> None:
    bucket, uri = rgw_backup
    with rgw_store.bucket("abb-ranged-corrupt") as corrupt:
        client = rgw_store.client()
        key = uri.removeprefix(f"s3://{bucket}/")
        for name in buckets.backup_keys(key):
            client.copy_object(Bucket=corrupt, Key=name, CopySource={"Bucket": bucket, "Key": name})
        dump = bytearray(buckets.get_object(client, corrupt, key))
        dump[len(dump) // 2] ^= 0xFF
        client.put_object(Bucket=corrupt, Key=key, Body=bytes(dump))
        target = postgres.new_database(pg15, "ranged_corrupt")
        run = cli.restore(rgw_store.job_env(corrupt), f"s3://{corrupt}/{key}", pg15.superuser_url(target),
                          "--parallel-download-threshold", "1")
    with postgres.connect(pg15, target) as conn:
        relations = postgres.user_relations(conn)
    assert (run.returncode, "does not match its manifest" in run.error_message, relations) == (7, True, []), str(run)

"""The dump object is completed with ``If-None-Match: *`` (storage.StreamUploader): two
uploads to the same key never replace each other, and none is left open.

Staged directly on the uploader (the CLI-level race is the ``concurrent-backups-*`` rows
of the failure-mode table)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import pytest
from agent_bom_backup.errors import RefusedError
from agent_bom_backup.parts import MIN_PART_SIZE, PartSchedule, plan_upload
from agent_bom_backup.resources import memory_budget
from agent_bom_backup.storage import StorageConfig, StreamUploader, make_client, multipart_etag

from tests.support import buckets
from tests.support import cli
from devstack.s3server import MotoServer

KEY = f"{cli.PREFIX}/agent-bom-20000101T000000Z.dump"


def _upload(s3: MotoServer, bucket: str, data: bytes) -> Callable[[], object]:
    config = StorageConfig(bucket=bucket, region="us-east-1", endpoint_url=s3.endpoint_url, path_style=True)
    uploader = StreamUploader(make_client(config), config, KEY, plan_upload(PartSchedule(MIN_PART_SIZE), 2, memory_budget()))
    return lambda: uploader.upload(io.BytesIO(data).read)


def test_multipart_etag_matches_the_listing(s3: MotoServer, bucket: str) -> None:
    client = s3.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=KEY)
    parts = []
    for number, chunk in enumerate((os.urandom(MIN_PART_SIZE), b"tail"), start=1):
        response = client.upload_part(Bucket=bucket, Key=KEY, UploadId=upload["UploadId"], PartNumber=number, Body=chunk)
        parts.append({"PartNumber": number, "ETag": response["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=KEY, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})
    listed = client.list_objects_v2(Bucket=bucket, Prefix=KEY)["Contents"][0]["ETag"].strip('"')
    assert multipart_etag(parts) == listed


def test_second_upload_of_different_bytes_is_refused(s3: MotoServer, bucket: str) -> None:
    first = os.urandom(1000)
    _upload(s3, bucket, first)()
    with pytest.raises(RefusedError, match="is taken: another backup started in the same second"):
        _upload(s3, bucket, os.urandom(1000))()
    client = s3.client()
    kept = buckets.get_object(client, bucket, KEY)
    assert kept == first
    assert buckets.open_uploads(client, bucket) == []


def test_second_upload_of_identical_bytes_succeeds_without_leaving_an_upload(s3: MotoServer, bucket: str) -> None:
    data = os.urandom(1000)
    _upload(s3, bucket, data)()
    result = _upload(s3, bucket, data)()
    client = s3.client()
    assert result.size == 1000
    assert buckets.get_object(client, bucket, KEY) == data
    assert buckets.open_uploads(client, bucket) == []

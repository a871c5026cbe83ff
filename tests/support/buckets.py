"""S3 helpers of the tests: a fresh bucket, what is in it, and the names of a backup's objects.

* the bucket: :func:`fresh_bucket` (:func:`unique_bucket_name`), :func:`object_keys`,
  :func:`open_uploads`, :func:`get_object`, :func:`put_object`;
* a backup's objects: :func:`backup_keys` (dump, roles, manifest), :func:`claim_key`,
  :func:`read_manifest`, :func:`without_claims`.

Running the CLI (and the :class:`~tests.support.cli.Backup` it writes) is
:mod:`tests.support.cli`; databases are :mod:`tests.support.postgres`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.client import BaseClient

from devstack.rgw import RgwServer
from devstack.s3server import DEFAULT_REGION, MotoServer

#: the suffixes of a backup's three objects, and of the claim that took its id (written
#: first, kept afterwards: a failed run leaves its claim, which looks like no backup)
DUMP, ROLES, MANIFEST, CLAIM = ".dump", ".roles.sql", ".manifest.json", ".claim"


def unique_bucket_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@contextlib.contextmanager
def fresh_bucket(s3: MotoServer | RgwServer, prefix: str, region: str = DEFAULT_REGION) -> Iterator[str]:
    """A new bucket with a unique valid name, deleted (with its objects and uploads) afterwards."""
    name = s3.create_bucket(unique_bucket_name(prefix), region=region)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):  # a test may have deleted it or reset moto
            s3.delete_bucket(name)


def object_keys(client: BaseClient, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def open_uploads(client: BaseClient, bucket: str) -> list[dict[str, Any]]:
    """The bucket's multipart uploads that were neither completed nor aborted."""
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def open_upload_keys(client: BaseClient, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in open_uploads(client, bucket))


def get_object(client: BaseClient, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_object(client: BaseClient, bucket: str, key: str, body: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def roles_key(dump_key: str) -> str:
    return dump_key.removesuffix(DUMP) + ROLES


def manifest_key(dump_key: str) -> str:
    return dump_key.removesuffix(DUMP) + MANIFEST


def claim_key(dump_key: str) -> str:
    return dump_key.removesuffix(DUMP) + CLAIM


def without_claims(keys: Sequence[str]) -> list[str]:
    """``keys`` without claim objects: what could make up a backup."""
    return [k for k in keys if not k.endswith(CLAIM)]


def claims(keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k.endswith(CLAIM)]


def read_manifest(client: BaseClient, bucket: str, dump_key: str) -> dict[str, Any]:
    """The manifest of the backup whose dump is ``dump_key``."""
    return dict(json.loads(get_object(client, bucket, manifest_key(dump_key))))


def backup_keys(dump_key: str) -> tuple[str, str, str]:
    """The dump, roles and manifest keys of the backup whose dump is ``dump_key``."""
    return dump_key, roles_key(dump_key), manifest_key(dump_key)

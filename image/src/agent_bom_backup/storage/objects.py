"""Object operations on one bucket/prefix (:class:`Storage`): the preflight, small objects,
the claim that takes a backup id, downloads and listings.

A backup id is taken by a conditional write of a small claim object (``<id>.claim``,
``If-None-Match: *``) before anything is uploaded, and checked again before the dump is
completed (one listing of the id's objects: the claim's ETag is still ours, and nothing
is at the dump's key): of two runs that picked the same id (same second), exactly one
writes a backup under that id; the other takes the next free second (the backup does,
:func:`backup._claim_free_id`); on a store that ignores ``If-None-Match`` on PutObject the
later check refuses it (exit 8) and nothing is overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import PreflightError, RefusedError, StorageError
from ..log import event, get_logger
from ..manifest import CLAIM_SUFFIX, DUMP_SUFFIX, MANIFEST_SUFFIX, ROLES_SUFFIX, BackupKeys
from ..parts import MiB
from .config import AWS_REGION_NAME, ProgressCallback, StorageConfig, is_aws_endpoint, make_client
from .download import DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD, ObjectDownload, head_object
from .encryption import EncryptionCheck
from .errors import SAME_SECOND_HINT, _as_preflight, same_second_refusal, storage_error


@dataclass(frozen=True)
class Claim:
    """The claim object that took a backup id: its key and the ETag our PutObject got."""

    key: str
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    storage_class: str | None = None


@dataclass
class BackupEntry:
    """One backup under a prefix as seen by listing (manifest contents not read)."""

    keys: BackupKeys
    dump: ObjectInfo | None = None
    roles: ObjectInfo | None = None
    manifest: ObjectInfo | None = None
    claim: ObjectInfo | None = None


class Storage:
    """Operations on one bucket/prefix."""

    def __init__(self, config: StorageConfig, client: Any | None = None) -> None:
        config.validate()
        self.config = config
        self.client = client or make_client(config)
        #: what the store confirmed of the encryption of every object written through this
        #: Storage (and the uploaders given it)
        self.encryption = EncryptionCheck.for_config(config)

    @property
    def custom_endpoint(self) -> bool:
        """Whether the client talks to an S3-compatible store rather than AWS itself."""
        return not is_aws_endpoint(self.client.meta.endpoint_url)

    # --- preflight -------------------------------------------------------
    def preflight(self, list_prefix: str | None = None) -> list[str]:
        """Cheap reachability check: the bucket exists, we may list, the region matches.

        ``HeadBucket`` is authorised by ``s3:ListBucket`` *without* a prefix, so the
        least-privilege policies (deploy/iam/: ``s3:ListBucket`` only under the prefix)
        are denied it: a 403 there proves nothing, and the prefix listing decides. The
        listing is of ``list_prefix`` (under the prefix) when given, and its keys are
        returned: the backup lists its new backup id's objects, one request for both.
        """
        uri = f"s3://{self.config.bucket}/{self.config.prefix.strip('/')}/"
        try:
            self.client.head_bucket(Bucket=self.config.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise self._no_such_bucket() from None
            if code in ("301", "PermanentRedirect", "400"):
                raise PreflightError(
                    f"bucket {self.config.bucket} is not in region {self.config.region}",
                    hint="set bucketRegion to the bucket's region",
                ) from None
            if code not in ("403", "AccessDenied", "Forbidden"):
                raise _as_preflight(storage_error(exc, "checking the bucket", uri)) from None
            event(get_logger(), "HeadBucket denied (s3:ListBucket scoped to the prefix); checking by listing the prefix",
                  level=logging.DEBUG)
        except BotoCoreError as exc:
            raise _as_preflight(storage_error(exc, "checking the bucket", uri)) from None
        self._check_region(uri)
        try:
            response = self.client.list_objects_v2(
                Bucket=self.config.bucket, Prefix=list_prefix or self.config.prefix.strip("/") + "/",
                MaxKeys=10 if list_prefix else 1)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchBucket", "404"):
                raise self._no_such_bucket() from None
            raise _as_preflight(storage_error(exc, "listing the prefix", uri)) from None
        except BotoCoreError as exc:
            raise _as_preflight(storage_error(exc, "listing the prefix", uri)) from None
        return [str(obj["Key"]) for obj in response.get("Contents", [])] if list_prefix else []

    def _no_such_bucket(self) -> PreflightError:
        return PreflightError(f"bucket {self.config.bucket} does not exist", hint="create it or fix destination.bucket")

    def _check_region(self, uri: str) -> None:
        if not self.config.verify_region or not self.config.region:
            return
        try:
            location = self.client.get_bucket_location(Bucket=self.config.bucket).get("LocationConstraint")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "404"):
                raise self._no_such_bucket() from None
            if code in ("AccessDenied", "NotImplemented"):
                event(get_logger(), "cannot read the bucket location; region not verified", level=logging.WARNING, code=code)
                return
            raise _as_preflight(storage_error(exc, "reading the bucket location", uri)) from None
        except BotoCoreError as exc:
            raise _as_preflight(storage_error(exc, "reading the bucket location", uri)) from None
        if self.custom_endpoint and not location:
            return  # many S3-compatible stores report no location
        actual = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
        if self.custom_endpoint and not AWS_REGION_NAME.match(actual):
            # Ceph RGW reports its zonegroup's API name (stock: "default"), R2 "auto", ...
            event(get_logger(), f"preflight: the store reports the bucket's location as {actual!r}, which is not an "
                  f"AWS region name (an S3-compatible store's zonegroup or location): not compared with "
                  f"{self.config.region}", location=actual)
            return
        if actual != self.config.region:
            raise PreflightError(
                f"bucket {self.config.bucket} is in region {actual}, not {self.config.region}",
                hint="set destination.bucketRegion (AWS_REGION) to the bucket's region",
            )

    # --- objects ----------------------------------------------------------
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists, by listing (needs only s3:ListBucket)."""
        try:
            response = self.client.list_objects_v2(Bucket=self.config.bucket, Prefix=key, MaxKeys=5)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "checking for an existing object", self.config.uri(key)) from None
        return any(obj["Key"] == key for obj in response.get("Contents", []))

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        """Write a small object; its requested encryption must be confirmed by the store."""
        uri = self.config.uri(key)
        try:
            response = self.client.put_object(
                Bucket=self.config.bucket, Key=key, Body=body, ContentType=content_type,
                **self.config.put_extra_args(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "writing", uri, sse=self.config.sse) from None
        self.encryption.require(uri, key, "PutObject", response, head=lambda: self._head(key))

    def _head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.config.bucket, Key=key))

    # --- the claim that takes a backup id ------------------------------------
    def claim(self, keys: BackupKeys) -> Claim:
        """Take the backup id ``keys.backup_id``: a conditional PutObject (``If-None-Match: *``)
        of ``<id>.claim``, written before anything is uploaded and kept afterwards (the
        backup role cannot delete; prune removes it with its backup).

        Every store here honours the condition on PutObject (Ceph RGW 16 does, although it
        ignores it on CompleteMultipartUpload). A store that answers 501 gets an
        unconditional write with a warning; :meth:`check_claim` still tells two runs apart.
        """
        uri, dump_uri = self.config.uri(keys.claim), self.config.uri(keys.dump)
        body = json.dumps({
            "backup_id": keys.backup_id, "token": uuid.uuid4().hex, "host": socket.gethostname(),
            "pid": os.getpid(), "claimed_at": datetime.now().astimezone().isoformat(),
        }).encode()
        request = {"Bucket": self.config.bucket, "Key": keys.claim, "Body": body, "ContentType": "application/json",
                   **self.config.put_extra_args()}
        try:
            try:
                response = self.client.put_object(IfNoneMatch="*", **request)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                # 409 ConditionalRequestConflict: AWS's answer to a concurrent conditional write
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (409, 412):
                    raise same_second_refusal(dump_uri) from None
                if code not in ("NotImplemented", "501") and status != 501:
                    raise
                event(get_logger(), "the store does not support conditional writes; writing the backup id's "
                      "claim unconditionally (checked again before the dump is completed)", level=logging.WARNING)
                response = self.client.put_object(**request)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "taking the backup id", uri, sse=self.config.sse) from None
        self.encryption.require(uri, keys.claim, "PutObject", response, head=lambda: self._head(keys.claim))
        etag = str(response.get("ETag") or "").strip('"')
        event(get_logger(), "backup id taken", claim=keys.claim)
        return Claim(key=keys.claim, etag=etag)

    def id_in_use(self, keys: BackupKeys) -> bool:
        """Whether any object of the backup id ``keys`` exists (one listing, s3:ListBucket)."""
        try:
            response = self.client.list_objects_v2(Bucket=self.config.bucket, Prefix=keys.id_prefix, MaxKeys=10)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "listing the backup id's objects", self.config.uri(keys.claim)) from None
        listed = {str(o["Key"]) for o in response.get("Contents", [])}
        return bool({keys.dump, keys.roles, keys.manifest, keys.claim} & listed)

    def check_claim(self, claim: Claim, dump_key: str) -> None:
        """Refuse unless the backup id is still this run's, just before its dump is
        completed: the claim's ETag in the listing is the one our PutObject got (a store
        that ignored ``If-None-Match`` let another run overwrite it), and nothing is at the
        dump's key yet (a run of the same second that completed before this one claimed,
        on a store that also ignores ``If-None-Match`` on CompleteMultipartUpload, like Ceph
        RGW 16). One listing of the id's objects; needs s3:ListBucket only."""
        try:
            response = self.client.list_objects_v2(Bucket=self.config.bucket,
                                                    Prefix=claim.key.removesuffix(CLAIM_SUFFIX), MaxKeys=10)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "checking the backup id's claim", self.config.uri(claim.key)) from None
        listed = {str(o["Key"]): str(o.get("ETag", "")).strip('"') for o in response.get("Contents", [])}
        if dump_key in listed:
            raise RefusedError(
                f"{self.config.uri(dump_key)} is taken: another backup of the same second completed it first "
                "(the store ignored If-None-Match); nothing of this run was completed",
                hint=SAME_SECOND_HINT,
            )
        if not claim.etag:
            event(get_logger(), "the store returned no ETag for the claim; not checked again", level=logging.WARNING)
            return
        if listed.get(claim.key) != claim.etag:
            raise RefusedError(
                f"{self.config.uri(dump_key)} is taken: another backup started in the same second and "
                f"{'replaced' if claim.key in listed else 'removed'} this run's claim {self.config.uri(claim.key)} "
                "(the store ignored If-None-Match); nothing of this run was completed",
                hint=SAME_SECOND_HINT,
            )

    def get_bytes(self, key: str, max_size: int = 64 * MiB) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key)
            if response.get("ContentLength", 0) > max_size:
                raise StorageError(f"{self.config.uri(key)} is larger than expected ({response['ContentLength']} bytes)")
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "reading", self.config.uri(key)) from None

    def head(self, key: str) -> dict[str, Any]:
        return head_object(self.client, self.config, key)

    def stream(self, key: str, chunk_size: int = MiB) -> Iterator[bytes]:
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key)
            body = response["Body"]
            while True:
                chunk = body.read(chunk_size)
                if not chunk:
                    return
                yield chunk
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "downloading", self.config.uri(key)) from None

    def download(self, key: str, path: Path, progress: ProgressCallback | None = None,
                 parallel_threshold: int | None = DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD) -> tuple[int, str]:
        """Copy ``key`` to the file ``path`` (created or replaced); returns (size, sha256) of
        what was read, hashed in order (:meth:`download.ObjectDownload.to_file`: one stream,
        or parallel ranges where the store serves them cheaply; ``parallel_threshold`` None:
        always one stream)."""
        return ObjectDownload(self.client, self.config, key, progress).to_file(path, parallel_threshold)

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys`` in order, one ``DeleteObject`` each.

        Not ``DeleteObjects``: GCS's XML API and some other S3-compatible stores lack it,
        it needs a Content-MD5/checksum header strict stores reject, and prune deletes a
        handful of objects. IAM-wise both need only ``s3:DeleteObject`` on the keys.
        """
        for key in keys:
            try:
                self.client.delete_object(Bucket=self.config.bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                raise storage_error(exc, "deleting", self.config.uri(key)) from None

    # --- listing ------------------------------------------------------------
    def list_backups(self, prefix: str | None = None) -> list[BackupEntry]:
        """Backups directly under the prefix, newest first."""
        prefix = (self.config.prefix if prefix is None else prefix).strip("/")
        list_prefix = prefix + "/" if prefix else ""
        entries: dict[str, BackupEntry] = {}
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.config.bucket, Prefix=list_prefix, Delimiter="/"):
                for obj in page.get("Contents", []):
                    keys = BackupKeys.from_any_key(obj["Key"])
                    if keys is None or keys.prefix != prefix:
                        continue
                    info = ObjectInfo(obj["Key"], int(obj["Size"]), obj["LastModified"], obj.get("StorageClass"))
                    entry = entries.setdefault(keys.backup_id, BackupEntry(keys=keys))
                    name = obj["Key"]
                    if name.endswith(DUMP_SUFFIX):
                        entry.dump = info
                    elif name.endswith(ROLES_SUFFIX):
                        entry.roles = info
                    elif name.endswith(MANIFEST_SUFFIX):
                        entry.manifest = info
                    elif name.endswith(CLAIM_SUFFIX):
                        entry.claim = info
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "listing", f"s3://{self.config.bucket}/{list_prefix}") from None
        return sorted(entries.values(), key=lambda e: e.keys.backup_id, reverse=True)

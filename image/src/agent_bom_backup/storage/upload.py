"""Upload: the multipart :class:`StreamUploader` of a stream of unknown length within a
memory budget, and what S3 makes of its parts (:func:`multipart_etag`, :func:`crc32_checksum`).

Any failure aborts the multipart upload: no partial object is ever left looking complete.
Part uploads run in daemon threads, so neither the abort nor the process exit waits for a
slow part. Nothing reads the ETag of the CompleteMultipartUpload answer (Ceph RGW 16
returns an empty one).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..background import in_background
from ..log import event, get_logger
from ..parts import Part, PartReader, UploadPlan, fill_with
from .config import ProgressCallback, StorageConfig
from .encryption import EncryptionCheck
from .errors import same_second_refusal, storage_error

#: after an abort, how long to wait for parts still in flight before aborting again
ABORT_GRACE_S = 5.0


@dataclass
class UploadResult:
    key: str
    size: int
    sha256: str
    parts: int


def crc32_checksum(data: bytearray) -> str:
    """The base64 CRC32 S3 takes as ``ChecksumCRC32``."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _returns_buffer(reader: PartReader, part: Part, slots: threading.BoundedSemaphore) -> Callable[[Future[Any]], None]:
    """A done-callback freeing the part's upload slot and giving its buffer back. It lets
    go of the part when it runs: a future keeps its callbacks, and a buffer still
    referenced after the pool dropped it (parts grew) would be memory outside the budget."""
    holder = [part]

    def give_back(_future: Future[Any]) -> None:
        if holder:
            done = holder.pop()
            slots.release()
            reader.buffers.give_back(done.data, done.size)

    return give_back


class StreamUploader:
    """Multipart upload of a stream of unknown length within a memory budget.

    Parts are read into reused buffers (:class:`parts.PartBuffers`): ``concurrency`` parts
    upload while the next is read, fewer as parts grow, so that the buffers never take more
    than ``plan`` allows (:func:`parts.plan_upload`). A part goes to botocore as the buffer itself;
    where the client calculates request checksums (AWS's own endpoints) the part's CRC32 is
    computed here and sent as ``ChecksumCRC32``, because botocore would otherwise copy the
    buffer into an ``io.BytesIO`` to send the checksum as a trailer: one more part-sized
    copy per part in flight, outside the budget.
    """

    def __init__(
        self,
        client: Any,
        config: StorageConfig,
        key: str,
        plan: UploadPlan,
        progress: ProgressCallback | None = None,
        encryption: EncryptionCheck | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.key = key
        self.plan = plan
        self.progress = progress
        self.encryption = encryption or EncryptionCheck.for_config(config)
        self._part_checksums = client.meta.config.request_checksum_calculation == "when_supported"
        self._parts_confirmed = 0
        self._parts_lock = threading.Lock()

    def upload(self, read: Callable[[int], bytes] | None = None, before_complete: Callable[[], None] | None = None,
               *, parts: PartReader | None = None) -> UploadResult:
        """Upload the stream ``read`` (``read(n)`` returns up to ``n`` bytes, exactly ``n``
        unless at the end), or ``parts`` being read already (the dump: read ahead while the
        bucket is checked), until it ends.

        ``before_complete`` runs after the last part is sent and before the upload is
        completed; raising there (e.g. because pg_dump exited non-zero) aborts it.
        Requested encryption is confirmed from the answers (:class:`EncryptionCheck`):
        the CreateMultipartUpload answer before a part is sent, so an unconfirmed
        upload is aborted at once.
        """
        reader = parts if parts is not None else PartReader(self.plan, fill_with(read=read))
        uri = self.config.uri(self.key)
        log = get_logger()
        futures: list[Future[dict[str, Any]]] = []
        completed = False
        upload_id: str | None = None
        try:
            try:
                created = self.client.create_multipart_upload(
                    Bucket=self.config.bucket, Key=self.key, **self.config.put_extra_args(storage_class=True)
                )
            except (ClientError, BotoCoreError) as exc:
                raise storage_error(exc, "starting the upload", uri, sse=self.config.sse) from None
            upload_id = created["UploadId"]
            event(log, "upload started", key=self.key, read_ahead=reader.total, **reader.plan.to_log())
            if not self.encryption.answer(uri, self.key, "CreateMultipartUpload", created):
                raise self.encryption.unconfirmed(uri, "CreateMultipartUpload")
            # at most ``concurrency`` parts upload at once (fewer when the buffers are fewer);
            # the reader fills the next buffer meanwhile
            slots = threading.BoundedSemaphore(self.plan.concurrency)
            for part in reader:
                slots.acquire()
                self._raise_failed(futures)
                future = in_background(partial(self._upload_part, upload_id, part.number, part.data),
                                       f"upload-part-{part.number}")
                future.add_done_callback(_returns_buffer(reader, part, slots))
                futures.append(future)
                del part  # the callback gives the buffer back; nothing else may keep it
                if self.progress:
                    self.progress(reader.total)
            etags = [f.result() for f in futures]
            if before_complete:
                before_complete()
            answer = self._complete(upload_id, etags, uri)
            completed = True
            self._confirm_completed(answer, len(etags), uri)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "uploading", uri, sse=self.config.sse) from None
        finally:
            if not completed:
                reader.close()
                for future in futures:
                    future.cancel()
                if upload_id is not None:
                    self._abort(upload_id, uri, [f for f in futures if not f.done()])
        event(log, "object uploaded", key=self.key, bytes=reader.total, parts=len(futures),
              buffer_peak=reader.buffers.peak)
        return UploadResult(key=self.key, size=reader.total, sha256=reader.hasher.hexdigest(), parts=len(futures))

    def _confirm_completed(self, answer: dict[str, Any], parts: int, uri: str) -> None:
        """The completed object's encryption: the completion's answer, else every part's,
        else a HEAD. Raising here leaves a dump without a manifest (incomplete)."""
        if not self.encryption.requested or self.encryption.answer(uri, self.key, "CompleteMultipartUpload", answer):
            return
        if self._parts_confirmed == parts:
            self.encryption.note(self.key, f"UploadPart ({parts} of {parts})")
            return
        self.encryption.require(uri, self.key, "CompleteMultipartUpload", answer,
                                head=lambda: self.client.head_object(Bucket=self.config.bucket, Key=self.key))

    def _complete(self, upload_id: str, parts: list[dict[str, Any]], uri: str) -> dict[str, Any]:
        """Complete the upload only if no object exists at the key (``If-None-Match: *``);
        returns the store's answer (whose ETag nothing reads: RGW's is empty).

        The claim object decides which of two runs in the same second owns the key; this
        condition is a second guard where the store honours it (Ceph RGW 16 ignores it and
        overwrites). A store without conditional writes (501 NotImplemented) is completed
        unconditionally, with a warning.
        """
        request = {"Bucket": self.config.bucket, "Key": self.key, "UploadId": upload_id,
                   "MultipartUpload": {"Parts": parts}}
        try:
            return dict(self.client.complete_multipart_upload(IfNoneMatch="*", **request))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = error.get("Code", "")
            if code in ("NotImplemented", "501") or status == 501:
                event(get_logger(), "the store does not support conditional writes; completing without "
                      "If-None-Match (the backup id's claim object still tells two runs apart)",
                      level=logging.WARNING)
                return dict(self.client.complete_multipart_upload(**request))
            if code not in ("PreconditionFailed", "412") and status != 412:
                raise
        if self._object_etag() == multipart_etag(parts):
            # byte for byte what this run uploaded: a retry of our own completed request,
            # or a run in the same second that dumped identical bytes. Either way the
            # object is this backup; make sure our upload is not left open.
            self._abort_once(upload_id, uri, again=True)
            return {}
        raise same_second_refusal(uri)

    def _object_etag(self) -> str | None:
        """The ETag of the object at the key, by listing (s3:ListBucket, no s3:GetObject)."""
        try:
            response = self.client.list_objects_v2(Bucket=self.config.bucket, Prefix=self.key, MaxKeys=5)
        except (ClientError, BotoCoreError):
            return None
        for obj in response.get("Contents", []):
            if obj["Key"] == self.key:
                return str(obj.get("ETag", "")).strip('"')
        return None

    def _upload_part(self, upload_id: str, part_number: int, data: bytearray) -> dict[str, Any]:
        checksum = {"ChecksumCRC32": crc32_checksum(data)} if self._part_checksums else {}
        response = self.client.upload_part(
            Bucket=self.config.bucket, Key=self.key, UploadId=upload_id, PartNumber=part_number, Body=data,
            **checksum,
        )
        # raises (and so aborts the upload) when the answer names another mode or key
        if self.encryption.answer(self.config.uri(self.key), self.key, "UploadPart", response, note=False):
            with self._parts_lock:
                self._parts_confirmed += 1
        return {"PartNumber": part_number, "ETag": response["ETag"]}

    @staticmethod
    def _raise_failed(futures: list[Future[dict[str, Any]]]) -> None:
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def _abort(self, upload_id: str, uri: str, in_flight: list[Future[dict[str, Any]]]) -> None:
        """Abort at once; then give parts still in flight a short grace and abort again if
        one of them landed after the first abort (S3 may keep such a part otherwise).

        Failing to abort is a warning, not an error: the error the operator must read is
        the one that made the upload fail (an unreachable endpoint cannot be told to abort).
        """
        log = get_logger()
        if not self._abort_once(upload_id, uri):
            return
        if in_flight:
            done, pending = wait_futures(in_flight, timeout=ABORT_GRACE_S)
            if any(not f.cancelled() and f.exception() is None for f in done):
                self._abort_once(upload_id, uri, again=True)
            if pending:
                event(log, "parts still in flight after the abort; if one lands later, S3 keeps it until a "
                      "lifecycle rule (AbortIncompleteMultipartUpload) removes it",
                      level=logging.WARNING, key=self.key, parts=len(pending))

    def _abort_once(self, upload_id: str, uri: str, again: bool = False) -> bool:
        try:
            self.client.abort_multipart_upload(Bucket=self.config.bucket, Key=self.key, UploadId=upload_id)
        except ClientError as exc:
            if again and exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return True
            self._abort_failed(exc, uri)
            return False
        except BotoCoreError as exc:
            self._abort_failed(exc, uri)
            return False
        if not again:
            event(get_logger(), "multipart upload aborted", key=self.key)
        return True

    def _abort_failed(self, exc: Exception, uri: str) -> None:
        event(
            get_logger(),
            "could not abort the multipart upload; a lifecycle rule (AbortIncompleteMultipartUpload) will remove it",
            level=logging.WARNING,
            key=self.key,
            error=str(storage_error(exc, "aborting", uri)),
        )


def multipart_etag(parts: list[dict[str, Any]]) -> str | None:
    """S3's ETag of a completed multipart object: MD5 of the parts' binary MD5s, "-N"."""
    digests = b""
    for part in parts:
        etag = str(part.get("ETag", "")).strip('"')
        if len(etag) != 32:
            return None
        try:
            digests += bytes.fromhex(etag)
        except ValueError:
            return None
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"

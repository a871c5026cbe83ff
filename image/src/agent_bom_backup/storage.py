"""S3-compatible object storage: the only module that imports boto3.

Uploads stream from a reader of unknown length into a multipart upload whose part
size grows as the upload proceeds (see ``PartSchedule``), so there is no size
ceiling short of S3's 5 TiB object limit while memory stays bounded by
``current part size x (concurrency + 1)``. Any failure aborts the multipart upload:
no partial object is ever left looking complete.

Failure behaviour (proven by tests/reliability, listed in docs/failure-modes.md):

* An interruption (SIGTERM from a Job deadline or an eviction) aborts at once, without
  waiting for parts still in flight: part uploads run in daemon threads, so neither the
  abort nor the process exit waits for a slow part (Kubernetes allows 30 s by default).
* A backup id is taken by a conditional write of a small claim object (``<id>.claim``,
  ``If-None-Match: *``) before anything is uploaded, and the claim is checked again (its
  ETag in the listing) before the dump is completed: of two runs that picked the same id
  (same second), exactly one writes a backup; the other is refused (exit 8). The dump is
  also completed with ``If-None-Match: *`` where the store honours it (Ceph RGW 16 does
  not on CompleteMultipartUpload; it does on PutObject).
* Requested server-side encryption is confirmed from the store's own answers for every
  object written (:class:`EncryptionCheck`); an unconfirmed write stops the backup before
  its manifest is written (exit 8): some stores accept the header and store plaintext.
* Nothing reads the ETag of the CompleteMultipartUpload answer (Ceph RGW 16 returns an
  empty one).
* Throttling and 5xx answers are retried by botocore's standard mode (``AWS_MAX_ATTEMPTS``
  total attempts when set, else 6) before the upload fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    SSLError,
)

from .errors import ConfigError, PreflightError, RefusedError, StorageError
from .log import event, get_logger, redact_url
from .manifest import CLAIM_SUFFIX, DUMP_SUFFIX, MANIFEST_SUFFIX, ROLES_SUFFIX, BackupKeys

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_GROWTH_INTERVAL = 900
DEFAULT_CONCURRENCY = 4
UNREACHABLE_HINT = "check endpointUrl, egress and that the store is up"
#: after an abort, how long to wait for parts still in flight before aborting again
ABORT_GRACE_S = 5.0
SSE_MODES = ("none", "AES256", "aws:kms")
#: S3 answers that mean "busy or failing, try again later" (retried by botocore first)
TRANSIENT_CODES = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                   "ThrottlingException", "RequestTimeTooSkewed", "503", "500", "502", "504")
CHECKSUM_MODES = ("auto", "when_supported", "when_required")
#: host name suffixes of AWS's own S3 endpoints (commercial, China, dual-stack, isolated
#: partitions); every other endpoint, however configured, is an S3-compatible store
AWS_ENDPOINT_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".c2s.ic.gov", ".sc2s.sgov.gov",
                         ".cloud.adc-e.uk", ".csp.hci.ic.gov")
#: an AWS region name (us-east-1, eu-central-2, us-gov-west-1, cn-north-1, us-isob-east-1)
AWS_REGION_NAME = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
SAME_SECOND_HINT = "wait a second and retry; existing backups are never overwritten"
ENCRYPTION_HINT = (
    "make the store apply it (Ceph RGW 16 has no SSE-S3: use aws:kms with `rgw crypt s3 kms backend`, over "
    "https or with `rgw crypt require ssl = false`), or set encryption.enabled: false (AGENT_BOM_BACKUP_SSE=none) "
    "if the store encrypts at rest by itself"
)


def same_second_refusal(dump_uri: str) -> RefusedError:
    """Two runs started in the same second picked the same backup id; this one stands back."""
    return RefusedError(f"{redact_url(dump_uri)} is taken: another backup started in the same second",
                        hint=SAME_SECOND_HINT)


def is_aws_endpoint(url: str | None) -> bool:
    """Whether ``url`` is one of AWS's own S3 endpoints (by host name)."""
    host = (urlsplit(url).hostname or "") if url else ""
    return any(host.endswith(suffix) for suffix in AWS_ENDPOINT_SUFFIXES)


@dataclass(frozen=True)
class StorageConfig:
    bucket: str
    prefix: str = "agent-bom/postgres"
    region: str | None = None
    endpoint_url: str | None = None
    path_style: bool = False
    ca_bundle: str | None = None
    checksum_mode: str = "auto"
    verify_region: bool = True
    sse: str = "none"
    kms_key_id: str | None = None
    storage_class: str | None = None
    max_attempts: int = 5  # retries after the first attempt (botocore's ``max_attempts``)

    def validate(self) -> None:
        if not self.bucket:
            raise ConfigError("no bucket configured", hint="set --bucket or AGENT_BOM_BACKUP_BUCKET")
        if self.sse not in SSE_MODES:
            raise ConfigError(f"unknown server-side encryption {self.sse!r}", hint="use none, AES256 or aws:kms")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ConfigError("a KMS key id is set but encryption is not aws:kms", hint="set --sse aws:kms")
        if self.checksum_mode not in CHECKSUM_MODES:
            raise ConfigError(f"unknown checksum mode {self.checksum_mode!r}", hint="use auto, when_supported or when_required")
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ConfigError(f"CA bundle {self.ca_bundle} does not exist", hint="mount it or fix the path")

    def checksum_mode_for(self, endpoint_url: str | None) -> str:
        """``auto`` is ``when_required`` for any endpoint that is not AWS's own (many
        S3-compatible stores reject the CRC headers and aws-chunked bodies recent botocore
        sends by default), wherever the endpoint came from: ``--endpoint-url``,
        ``AWS_ENDPOINT_URL(_S3)`` or ``endpoint_url`` in the AWS config file."""
        if self.checksum_mode != "auto":
            return self.checksum_mode
        return "when_supported" if is_aws_endpoint(endpoint_url) else "when_required"

    def keys(self, backup_id: str) -> BackupKeys:
        return BackupKeys(prefix=self.prefix.strip("/"), backup_id=backup_id)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put_extra_args(self, *, storage_class: bool = False) -> dict[str, str]:
        """Encryption arguments of a write; the storage class only for the dump
        (``storage_class=True``): an archived manifest or roles object could not be read."""
        args: dict[str, str] = {}
        if self.sse != "none":
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        if storage_class and self.storage_class:
            args["StorageClass"] = self.storage_class
        return args


def make_client(config: StorageConfig) -> Any:
    """The one factory for S3 clients.

    The endpoint botocore will use is resolved first (``--endpoint-url``, else the SDK's
    own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` / config-file ``endpoint_url``,
    else AWS), so ``auto`` checksums and the default region treat every non-AWS store alike.
    """
    session = boto3.session.Session()
    resolved = session.client("s3", region_name=config.region, endpoint_url=config.endpoint_url or None,
                              config=Config(user_agent_extra="agent-bom-backup")).meta.endpoint_url
    custom = not is_aws_endpoint(resolved)
    # S3-compatible stores often have no regions; SigV4 still needs a name to sign with
    region = config.region or session.region_name or ("us-east-1" if custom else None)
    checksum_mode = config.checksum_mode_for(resolved)
    botocore_config = Config(
        region_name=region,
        s3={"addressing_style": "path" if config.path_style else "auto"},
        retries=_retries(config),
        request_checksum_calculation=checksum_mode,
        response_checksum_validation=checksum_mode,
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=max(10, DEFAULT_CONCURRENCY * 2),
        user_agent_extra="agent-bom-backup",
    )
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url or None,
        config=botocore_config,
        verify=config.ca_bundle or None,
    )


def _retries(config: StorageConfig) -> dict[str, Any]:
    """botocore's standard retry mode; ``AWS_MAX_ATTEMPTS`` (total attempts, the SDKs'
    own variable) overrides the default of 1 + ``config.max_attempts``."""
    total = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if total.isdigit() and int(total) >= 1:
        return {"mode": "standard", "total_max_attempts": int(total)}
    return {"mode": "standard", "max_attempts": config.max_attempts}


def storage_error(exc: Exception, action: str, uri: str, *, sse: str = "none") -> StorageError:
    """Translate a botocore exception into one clear line: what failed and what to do.

    Stores such as Ceph RGW send error bodies without a ``<Message>`` (botocore then
    reports ``Message=None``), so no line depends on the store's wording. ``sse`` is the
    server-side encryption a write asked for (it explains some refusals).
    """
    uri = redact_url(uri)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(error.get("Message") or "")
        request_id = str(exc.response.get("ResponseMetadata", {}).get("RequestId") or "")
        detail = f"{code or status}: {message}" if message else f"{code or status}"
        if code in ("NoSuchBucket",):
            return StorageError(f"{action} failed: bucket of {uri} does not exist", hint="check the bucket name")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{action} failed: no object at {uri}", hint="run `agent-bom-backup list`")
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(
                f"{action} failed: access denied to {uri} ({code})",
                hint="check the role's IAM policy (deploy/iam/) and the credentials in use",
            )
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return StorageError(f"{action} failed: {uri} is in another region ({code})", hint="fix bucketRegion")
        if code == "InvalidObjectState":
            return StorageError(
                f"{action} failed: {uri} is archived (Glacier/Deep Archive)",
                hint="restore it first: aws s3api restore-object --restore-request Days=2 ..., then retry",
            )
        if code in ("EntityTooSmall", "EntityTooLarge", "InvalidPart", "InvalidPartOrder"):
            return StorageError(f"{action} failed: the store rejected a part of {uri} ({detail})",
                                hint="if the store's minimum part size is larger, raise --part-size "
                                "(AGENT_BOM_BACKUP_PART_SIZE)")
        if code in ("PreconditionFailed", "412"):
            return StorageError(f"{action} failed: {uri} already exists (PreconditionFailed)",
                                hint="another writer created it first; existing objects are never overwritten")
        if code == "MissingContentLength" or status == 411:
            return StorageError(
                f"{action} failed for {uri}: the store answered 411 MissingContentLength: it does not accept "
                "botocore's streamed (aws-chunked) uploads with checksum trailers",
                hint="set checksumMode to auto or when_required (AGENT_BOM_BACKUP_CHECKSUM_MODE)",
            )
        if code == "InvalidRequest" and sse != "none":
            return StorageError(
                f"{action} failed for {uri}: the store refused the write with server-side encryption {sse} "
                f"({detail})",
                hint="stores such as Ceph RGW refuse encryption over plain http (`rgw crypt require ssl`): use "
                "the store's https endpoint, or set encryption.enabled: false (AGENT_BOM_BACKUP_SSE=none) if it "
                "encrypts at rest by itself",
            )
        if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500 and status != 501):
            attempts = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
            return StorageError(
                f"{action} failed for {uri}: the S3 endpoint answered {status} {code or ''}".rstrip()
                + f" on {attempts} attempt{'s' if attempts > 1 else ''}" + (f" ({message})" if message else ""),
                hint="the store is overloaded or failing; the next scheduled run retries, "
                "check the store's health if it persists",
            )
        where = f"look up request {request_id} in the store's log" if request_id else "check the store's log"
        return StorageError(
            f"{action} failed for {uri}: the store answered {status} {detail}" if status else
            f"{action} failed for {uri}: {detail}",
            hint=where + ("" if message else " (the store gave no reason)"),
        )
    if isinstance(exc, SSLError):
        return StorageError(
            f"{action} failed for {uri}: TLS certificate of the S3 endpoint not trusted ({_first(exc)})",
            hint="mount the endpoint's CA bundle and set AGENT_BOM_BACKUP_CA_BUNDLE (chart: controlPlane.backup.destination.caBundle)",
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return StorageError(f"{action} failed: cannot reach the S3 endpoint for {uri}", hint=UNREACHABLE_HINT)
    if isinstance(exc, HTTPClientError):  # connection closed or read timeout mid-request
        return StorageError(f"{action} failed: lost the connection to the S3 endpoint for {uri}", hint=UNREACHABLE_HINT)
    return StorageError(f"{action} failed for {uri}: {redact_url(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}")


@dataclass(frozen=True)
class PartSchedule:
    """Part sizes for a stream of unknown length.

    Part n (1-based) is ``initial x 2**((n-1) // growth_interval)``, capped at 5 GiB.
    With the defaults (8 MiB, doubling every 900 parts) 10,000 parts hold ~11.9 TiB,
    well past S3's 5 TiB object limit; any start size >= 5 MiB reaches it.
    """

    initial: int = DEFAULT_PART_SIZE
    growth_interval: int = DEFAULT_GROWTH_INTERVAL

    def validate(self) -> None:
        if self.initial < MIN_PART_SIZE or self.initial > MAX_PART_SIZE:
            raise ConfigError(
                f"part size {self.initial} is outside S3's limits",
                hint="use 5MiB..5GiB (e.g. 8MiB)",
            )
        if self.growth_interval < 1:
            raise ConfigError("part growth interval must be at least 1 part")

    def size(self, part_number: int) -> int:
        steps = (part_number - 1) // self.growth_interval
        return min(self.initial << min(steps, 40), MAX_PART_SIZE)

    def capacity(self, parts: int = MAX_PARTS) -> int:
        """Bytes that ``parts`` parts can hold."""
        total = 0
        for n in range(1, parts + 1):
            total += self.size(n)
        return total


def kms_key_matches(requested: str | None, answered: str) -> bool:
    """Whether the KMS key a store names (a key id or key ARN) is the one requested.

    An alias (``alias/...``) cannot be told from the key the store names without
    ``kms:DescribeKey``, which the backup role lacks: any key then matches, the key the
    store named is recorded, and every object must name the same one."""
    if not requested or requested == answered:
        return True
    if requested.startswith("alias/") or ":alias/" in requested:
        return True
    return answered.endswith(f":key/{requested}") or requested.endswith(f":key/{answered}")


@dataclass
class EncryptionCheck:
    """Confirms, from the store's answers, that every object written is encrypted as asked.

    An answer *confirms* when it names the requested mode (and, for ``aws:kms``, a key
    that matches the requested one); it *contradicts* when it names another mode or key
    (refused at once); it is *silent* when it names none. Ceph RGW 16, for example,
    accepts ``x-amz-server-side-encryption: AES256`` and stores plaintext with silent
    answers. A silent answer to a PutObject falls back to a HEAD of the object (which
    needs s3:GetObject: the backup role's HEAD is denied, and the write stays
    unconfirmed). A multipart object is confirmed when CreateMultipartUpload confirms
    (checked before a byte is sent) and either CompleteMultipartUpload or every
    UploadPart answer confirms (RGW confirms the parts, not the completion).
    """

    mode: str = "none"
    kms_key_id: str | None = None
    #: the KMS key id or ARN the store named (the one actually used)
    store_kms_key_id: str | None = None
    #: key -> the operations whose answers confirmed it
    confirmed: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def for_config(cls, config: StorageConfig) -> EncryptionCheck:
        return cls(mode=config.sse, kms_key_id=config.kms_key_id)

    @property
    def requested(self) -> bool:
        return self.mode != "none"

    def answer(self, uri: str, key: str, operation: str, response: dict[str, Any], *, note: bool = True) -> bool:
        """True when ``response`` confirms the encryption of ``key`` (recorded unless
        ``note=False``), False when it is silent; raises :class:`RefusedError` when it
        contradicts the request."""
        if not self.requested:
            return True
        mode = response.get("ServerSideEncryption")
        answered_key = response.get("SSEKMSKeyId")
        if not mode or (self.mode == "aws:kms" and not answered_key):
            return False
        if mode != self.mode:
            raise RefusedError(f"the store encrypted {redact_url(uri)} with {mode}, not the requested {self.mode} "
                               f"(its {operation} answer)", hint=ENCRYPTION_HINT)
        if answered_key:
            with self._lock:
                known = self.store_kms_key_id
                if not kms_key_matches(self.kms_key_id, answered_key) or (known and answered_key != known):
                    raise RefusedError(
                        f"the store encrypted {redact_url(uri)} with KMS key {answered_key}, not "
                        f"{self.kms_key_id or known} (its {operation} answer)",
                        hint="check destination.encryption.kmsKeyId and the bucket's default encryption",
                    )
                if known is None:
                    self.store_kms_key_id = answered_key
                    if self.kms_key_id != answered_key:
                        event(get_logger(), "the store names the KMS key it uses", requested=self.kms_key_id,
                              kms_key_id=answered_key)
        if note:
            self.note(key, operation)
        return True

    def require(self, uri: str, key: str, operation: str, response: dict[str, Any],
                head: Callable[[], dict[str, Any]] | None = None) -> None:
        """Raise unless ``response`` (or, when it is silent, ``head()``) confirms."""
        if self.answer(uri, key, operation, response):
            return
        why = ""
        if head is not None:
            try:
                if self.answer(uri, key, "HeadObject", head()):
                    return
                why = " (nor does a HEAD of the object)"
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code") or "refused"
                why = f" (a HEAD of the object, which needs s3:GetObject, was refused: {code})"
            except BotoCoreError as exc:
                why = f" (a HEAD of the object failed: {type(exc).__name__})"
        raise self.unconfirmed(uri, operation, why)

    def note(self, key: str, operation: str) -> None:
        with self._lock:
            self.confirmed.setdefault(key, []).append(operation)

    def unconfirmed(self, uri: str, operation: str, why: str = "") -> RefusedError:
        what = f"server-side encryption {self.mode}" + (f" with KMS key {self.kms_key_id}" if self.kms_key_id else "")
        after = ("the manifest was written: remove this backup with `agent-bom-backup prune`"
                 if uri.endswith(MANIFEST_SUFFIX) else "the backup stopped before its manifest was written")
        return RefusedError(
            f"the store did not confirm {what} of {redact_url(uri)}: its {operation} answer names none{why}, "
            f"so the object may be stored unencrypted; {after}",
            hint=ENCRYPTION_HINT,
        )

    def record(self) -> dict[str, Any]:
        """What the manifest records: the encryption the store confirmed, object by object."""
        with self._lock:
            return {
                "requested": self.mode,
                "mode": self.mode if self.requested and self.confirmed else None,
                "kms_key_id": self.store_kms_key_id,
                "objects": {key: list(ops) for key, ops in self.confirmed.items()},
            }


@dataclass(frozen=True)
class Claim:
    """The claim object that took a backup id: its key and the ETag our PutObject got."""

    key: str
    etag: str


@dataclass
class UploadResult:
    key: str
    size: int
    sha256: str
    parts: int
    part_sizes: list[int] = field(default_factory=list)


ProgressCallback = Callable[[int], None]


class StreamUploader:
    """Multipart upload of a stream of unknown length with bounded memory."""

    def __init__(
        self,
        client: Any,
        config: StorageConfig,
        key: str,
        schedule: PartSchedule,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: ProgressCallback | None = None,
        encryption: EncryptionCheck | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.key = key
        self.schedule = schedule
        self.concurrency = max(1, concurrency)
        self.progress = progress
        self.encryption = encryption or EncryptionCheck.for_config(config)
        self._parts_confirmed = 0
        self._parts_lock = threading.Lock()

    def upload(self, read: Callable[[int], bytes], before_complete: Callable[[], None] | None = None) -> UploadResult:
        """Upload everything ``read`` returns until it returns b"".

        ``read(n)`` must return up to ``n`` bytes (exactly ``n`` unless at the end).
        ``before_complete`` runs after the last part is sent and before the upload is
        completed; raising there (e.g. because pg_dump exited non-zero) aborts it.
        Requested encryption is confirmed from the answers (:class:`EncryptionCheck`):
        the CreateMultipartUpload answer before a byte is read, so an unconfirmed
        upload is aborted at once.
        """
        uri = self.config.uri(self.key)
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.config.bucket, Key=self.key, **self.config.put_extra_args(storage_class=True)
            )
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "starting the upload", uri, sse=self.config.sse) from None
        upload_id = created["UploadId"]
        log = get_logger()
        hasher = hashlib.sha256()
        slots = threading.BoundedSemaphore(self.concurrency)
        futures: list[Future[dict[str, Any]]] = []
        part_sizes: list[int] = []
        total = 0
        completed = False
        try:
            if not self.encryption.answer(uri, self.key, "CreateMultipartUpload", created):
                raise self.encryption.unconfirmed(uri, "CreateMultipartUpload")
            part_number = 0
            while True:
                part_number += 1
                if part_number > MAX_PARTS:
                    raise StorageError(f"upload of {uri} exceeds {MAX_PARTS} parts", hint="raise --part-size")
                data = read(self.schedule.size(part_number))
                if not data and part_number > 1:
                    break
                hasher.update(data)
                total += len(data)
                if total > MAX_OBJECT_SIZE:
                    raise StorageError(f"backup exceeds S3's 5 TiB object limit at {uri}")
                part_sizes.append(len(data))
                self._raise_failed(futures)
                slots.acquire()
                future = self._start_part(upload_id, part_number, data)
                future.add_done_callback(lambda _f: slots.release())
                futures.append(future)
                if self.progress:
                    self.progress(total)
                del data
                if not part_sizes[-1]:
                    break
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
                for future in futures:
                    future.cancel()
                self._abort(upload_id, uri, [f for f in futures if not f.done()])
        event(log, "object uploaded", key=self.key, bytes=total, parts=len(part_sizes))
        return UploadResult(key=self.key, size=total, sha256=hasher.hexdigest(), parts=len(part_sizes), part_sizes=part_sizes)

    def _start_part(self, upload_id: str, part_number: int, data: bytes) -> Future[dict[str, Any]]:
        """Upload one part in a daemon thread.

        Not a ThreadPoolExecutor: the interpreter joins its workers at exit, so a SIGTERM
        would wait for every part in flight (minutes for a large part on a slow link)
        before the process could end; the Pod would be killed with the upload still open.
        """
        future: Future[dict[str, Any]] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._upload_part(upload_id, part_number, data))
            except BaseException as exc:  # handed to the main thread
                future.set_exception(exc)

        threading.Thread(target=run, name=f"upload-part-{part_number}", daemon=True).start()
        return future

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

    def _upload_part(self, upload_id: str, part_number: int, data: bytes) -> dict[str, Any]:
        response = self.client.upload_part(
            Bucket=self.config.bucket, Key=self.key, UploadId=upload_id, PartNumber=part_number, Body=data
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
    def preflight(self) -> None:
        """Cheap reachability check: the bucket exists, we may list, the region matches.

        ``HeadBucket`` is authorised by ``s3:ListBucket`` *without* a prefix, so the
        least-privilege policies (deploy/iam/: ``s3:ListBucket`` only under the prefix)
        are denied it: a 403 there proves nothing, and the prefix listing decides.
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
            self.client.list_objects_v2(Bucket=self.config.bucket, Prefix=self.config.prefix.strip("/") + "/", MaxKeys=1)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchBucket", "404"):
                raise self._no_such_bucket() from None
            raise _as_preflight(storage_error(exc, "listing the prefix", uri)) from None
        except BotoCoreError as exc:
            raise _as_preflight(storage_error(exc, "listing the prefix", uri)) from None

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
                event(get_logger(), "cannot read the bucket location; region not verified", level=30, code=code)
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

    def check_claim(self, claim: Claim, dump_key: str) -> None:
        """Refuse unless the claim is still ours (its ETag in the listing is the one our
        PutObject got): a store that ignored ``If-None-Match`` let another run overwrite
        it. Needs s3:ListBucket only."""
        if not claim.etag:
            event(get_logger(), "the store returned no ETag for the claim; not checked again", level=logging.WARNING)
            return
        try:
            response = self.client.list_objects_v2(Bucket=self.config.bucket, Prefix=claim.key, MaxKeys=5)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "checking the backup id's claim", self.config.uri(claim.key)) from None
        listed = next((str(o.get("ETag", "")).strip('"') for o in response.get("Contents", [])
                       if o["Key"] == claim.key), None)
        if listed != claim.etag:
            raise RefusedError(
                f"{self.config.uri(dump_key)} is taken: another backup started in the same second and "
                f"{'replaced' if listed else 'removed'} this run's claim {self.config.uri(claim.key)} "
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
        try:
            return self.client.head_object(Bucket=self.config.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "reading the metadata of", self.config.uri(key)) from None

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

    def download(self, key: str, destination: BinaryIO, progress: ProgressCallback | None = None) -> tuple[int, str]:
        """Copy ``key`` to ``destination``; returns (size, sha256) of what was read."""
        hasher = hashlib.sha256()
        size = 0
        for chunk in self.stream(key):
            hasher.update(chunk)
            try:
                destination.write(chunk)
            except OSError as exc:
                raise StorageError(
                    f"cannot write the download of {self.config.uri(key)} to local disk: {exc.strerror}",
                    hint="free space in the scratch directory or point --scratch-dir at a larger volume",
                ) from None
            size += len(chunk)
            if progress:
                progress(size)
        return size, hasher.hexdigest()

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


def _first(exc: Exception) -> str:
    text = redact_url(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_preflight(error: StorageError) -> PreflightError:
    return PreflightError(error.message, hint=error.hint)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a clear error for anything else."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"not an s3:// URI: {redact_url(uri)!r}", hint="use s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump or 'latest'")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket or any(c in bucket for c in " @?#"):
        raise ConfigError(f"malformed S3 URI {redact_url(uri)!r}: no valid bucket name")
    return bucket, key

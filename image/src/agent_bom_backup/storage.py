"""S3-compatible object storage: the only module that imports boto3's botocore.

botocore is imported directly, not through boto3 (whose ``boto3.compat`` pulls in
s3transfer and multiprocessing: ~0.1 s of start-up for nothing this tool uses), and
lazily: ``botocore.session`` and ``botocore.config`` when the first client is made (the
backup makes it in a thread while it connects to the database); only the exception
classes load with this module.

Uploads stream from a reader of unknown length into a multipart upload whose part
size grows as the upload proceeds (``parts.PartSchedule``), so there is no size
ceiling short of S3's 5 TiB object limit, while the part buffers in flight stay within
a memory budget (``parts.UploadPlan``). Any failure aborts the multipart upload: no
partial object is ever left looking complete. Large downloads run as parallel ranged
GETs into the destination file, hashed in order as ranges complete.

Failure behaviour (proven by tests/reliability, listed in docs/failure-modes.md):

* An interruption (SIGTERM from a Job deadline or an eviction) aborts at once, without
  waiting for parts still in flight: part uploads run in daemon threads, so neither the
  abort nor the process exit waits for a slow part (Kubernetes allows 30 s by default).
* A backup id is taken by a conditional write of a small claim object (``<id>.claim``,
  ``If-None-Match: *``) before anything is uploaded, and checked again before the dump is
  completed (one listing of the id's objects: the claim's ETag is still ours, and nothing
  is at the dump's key): of two runs that picked the same id (same second), exactly one
  writes a backup under that id; the other takes the next free second (the backup does,
  :func:`backup._claim_free_id`); on a store that ignores ``If-None-Match`` on PutObject the
  later check refuses it (exit 8) and nothing is overwritten. The preflight's one listing of
  the id's objects moves a run off an id already used before anything is written. The dump is also completed with
  ``If-None-Match: *`` where the store honours it (Ceph RGW 16 does not on
  CompleteMultipartUpload; it does on PutObject).
* Requested server-side encryption is confirmed from the store's own answers for every
  object written (:class:`EncryptionCheck`); an unconfirmed write stops the backup before
  its manifest is written (exit 8): some stores accept the header and store plaintext.
* Nothing reads the ETag of the CompleteMultipartUpload answer (Ceph RGW 16 returns an
  empty one).
* Throttling and 5xx answers are retried by botocore's standard mode (``AWS_MAX_ATTEMPTS``
  total attempts when set, else 6) before the upload fails.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    SSLError,
)

from .background import in_background
from .errors import ConfigError, PreflightError, RefusedError, StorageError
from .log import event, get_logger, redact_url
from .manifest import CLAIM_SUFFIX, DUMP_SUFFIX, MANIFEST_SUFFIX, ROLES_SUFFIX, BackupKeys
from .parts import MiB, Part, PartReader, UploadPlan, fill_with

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


class IdTaken(RefusedError):
    """The backup id's claim belongs to another run (a run of the same second took it
    first): the backup takes the next free second instead."""


def same_second_refusal(dump_uri: str) -> IdTaken:
    """Two runs started in the same second picked the same backup id; this one stands back."""
    return IdTaken(f"{redact_url(dump_uri)} is taken: another backup started in the same second",
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


#: connections botocore keeps per client: the most parts in flight (--upload-concurrency
#: at most 32) or ranges of a download, and the requests beside them
MAX_POOL_CONNECTIONS = 40
#: parallel ranged downloads (restore): objects from this size on, in ranges of this size,
#: this many at a time (what ``aws s3 cp`` does: 8 MiB ranges, 10 threads)
DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD = 64 * MiB
DOWNLOAD_RANGE_SIZE = 16 * MiB
DOWNLOAD_CONCURRENCY = 8
#: a store whose ranged GET of 1 MiB (while the stream runs) takes longer than this x a
#: HEAD plus this slack is not worth ranges (Ceph RGW, measured: 8-40 ms vs 5 ms)
RANGE_PROBE_BYTES = MiB
RANGE_PROBE_FACTOR = 4
RANGE_PROBE_SLACK_S = 0.1
#: servers (their ``Server`` header) known to read the whole object for every GET, ranged
#: or not: moto's (Werkzeug), where 8 MiB ranges of a 753 MB object took 40 s instead of
#: ~1 s, and where even one probe would cost a whole-object read beside the stream
WHOLE_OBJECT_SERVERS = ("Werkzeug/",)
#: the endpoint botocore uses when nothing names one
AWS_S3_ENDPOINT = "https://s3.amazonaws.com"


def make_client(config: StorageConfig) -> Any:
    """The one factory for S3 clients.

    ``auto`` checksums and the default region depend on whether the endpoint botocore
    uses is AWS's own: ``--endpoint-url``, else the SDK's own ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL`` / config-file ``endpoint_url``, else AWS. The client is built for
    the endpoint these name and checked against the one it resolved; only when they
    disagree (an endpoint from the config file) is it built again.
    """
    from botocore.config import Config
    from botocore.session import Session

    session = Session()
    named = config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")

    def build(endpoint: str) -> Any:
        """A client whose region default and ``auto`` checksums suit ``endpoint``."""
        custom = not is_aws_endpoint(endpoint)
        # S3-compatible stores often have no regions; SigV4 still needs a name to sign with
        region = config.region or session.get_config_variable("region") or ("us-east-1" if custom else None)
        checksum_mode = config.checksum_mode_for(endpoint)
        botocore_config = Config(
            region_name=region,
            s3={"addressing_style": "path" if config.path_style else "auto"},
            retries=_retries(config),
            request_checksum_calculation=checksum_mode,
            response_checksum_validation=checksum_mode,
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=MAX_POOL_CONNECTIONS,
            user_agent_extra="agent-bom-backup",
        )
        return session.create_client("s3", endpoint_url=config.endpoint_url or None, config=botocore_config,
                                     verify=config.ca_bundle or None)

    expected = named or AWS_S3_ENDPOINT
    client = build(expected)
    resolved = client.meta.endpoint_url
    if is_aws_endpoint(resolved) != is_aws_endpoint(expected):
        client = build(resolved)
    return client


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


ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class RangeProbe:
    """What a ranged GET said about the store: whether ranges are cheap, else why not."""

    cheap: bool
    why: str
    timings: dict[str, float] = field(default_factory=dict)


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

    def download(self, key: str, path: Path, progress: ProgressCallback | None = None,
                 parallel_threshold: int | None = DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD) -> tuple[int, str]:
        """Copy ``key`` to the file ``path`` (created or replaced); returns (size, sha256) of
        what was read, hashed in order. ``progress`` gets the bytes written so far.

        The object comes as one stream. One of at least ``parallel_threshold`` bytes (None:
        never) is also probed meanwhile (:meth:`_probe_ranges`): when the store serves ranges
        cheaply, the stream stops and the rest comes as :data:`DOWNLOAD_CONCURRENCY`
        parallel ranged GETs of :data:`DOWNLOAD_RANGE_SIZE` written at their offsets, hashed
        in order as they complete (read back from the file, which is in the page cache).
        The stream never waits for the probe. moto, which reads the whole object for every
        GET, is known by its server and gets no probe (:data:`WHOLE_OBJECT_SERVERS`).
        """
        uri = self.config.uri(key)
        try:
            with open(path, "w+b") as handle:  # read back too: ranges are hashed from the file
                started = time.monotonic()
                head = self.head(key)
                head_s = time.monotonic() - started
                size = int(head.get("ContentLength", 0))
                probe = None
                if parallel_threshold is not None and size >= max(parallel_threshold, RANGE_PROBE_BYTES):
                    server = str(head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("server", ""))
                    if server.startswith(WHOLE_OBJECT_SERVERS):
                        event(get_logger(), "the store reads the whole object for a ranged GET: downloading in one "
                              "stream", bytes=size, server=server)
                    else:
                        probe = in_background(lambda: self._probe_ranges(key, size, head_s), "range-probe")
                hasher = hashlib.sha256()
                position, switched = self._download_stream(key, handle, hasher, progress, probe, size)
                if not switched:
                    return position, hasher.hexdigest()
                self._download_ranges(key, handle.fileno(), position, size, hasher, progress)
                return size, hasher.hexdigest()
        except OSError as exc:
            raise _disk_error(exc, uri) from None

    def _download_stream(self, key: str, handle: BinaryIO, hasher: Any, progress: ProgressCallback | None,
                         probe: Future[RangeProbe] | None, size: int) -> tuple[int, bool]:
        """Stream the object into ``handle`` until it ends, or until ``probe`` finds ranges
        cheap; returns the bytes written and whether the rest is for ranges to fetch."""
        position = 0
        log = get_logger()
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key)
            body = response["Body"]
            while True:
                if probe is not None and probe.done():
                    verdict = probe.result() if probe.exception() is None else RangeProbe(False, "the probe failed")
                    probe = None
                    if verdict.cheap and size - position > DOWNLOAD_RANGE_SIZE:
                        event(log, "downloading in parallel ranges", bytes=size, offset=position,
                              range_size=DOWNLOAD_RANGE_SIZE, concurrency=DOWNLOAD_CONCURRENCY, **verdict.timings)
                        body.close()
                        return position, True
                    if not verdict.cheap:
                        event(log, f"{verdict.why}: downloading in one stream", bytes=size, **verdict.timings)
                chunk = body.read(MiB)
                if not chunk:
                    return position, False
                hasher.update(chunk)
                handle.write(chunk)
                position += len(chunk)
                if progress:
                    progress(position)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "downloading", self.config.uri(key)) from None

    def _probe_ranges(self, key: str, size: int, head_s: float) -> RangeProbe:
        """Whether ranged GETs are cheap on this store: a ranged GET of the object's last
        MiB answers not much slower than a HEAD (one that reads the whole object for every
        ranged GET takes far longer), and with that range (a store that ignores ranges
        answers with the whole object). 1 MiB, not 1 byte: a tiny answer can wait 40 ms for
        a delayed TCP ACK."""
        start = size - RANGE_PROBE_BYTES
        started = time.monotonic()
        response = self.client.get_object(Bucket=self.config.bucket, Key=key, Range=f"bytes={start}-{size - 1}")
        answered = str(response.get("ContentRange", ""))
        response["Body"].close()
        timings = {"head_seconds": round(head_s, 3), "ranged_get_seconds": round(time.monotonic() - started, 3)}
        if not answered.startswith(f"bytes {start}-"):
            return RangeProbe(False, "the store ignores ranged GETs", timings)
        if timings["ranged_get_seconds"] > RANGE_PROBE_FACTOR * head_s + RANGE_PROBE_SLACK_S:
            return RangeProbe(False, "the store reads the whole object for a ranged GET", timings)
        return RangeProbe(True, "", timings)

    def _download_ranges(self, key: str, fd: int, offset: int, size: int, hasher: Any,
                         progress: ProgressCallback | None) -> None:
        """``offset`` to ``size`` in ranges fetched by worker threads, hashed here in order
        as each completes."""
        try:
            os.posix_fallocate(fd, offset, size - offset)  # no space: fail now, not at the last range
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        ranges = [(start, min(start + DOWNLOAD_RANGE_SIZE, size)) for start in range(offset, size, DOWNLOAD_RANGE_SIZE)]
        results: list[Future[None]] = [Future() for _ in ranges]
        pending = iter(range(len(ranges)))
        lock = threading.Lock()
        stop = threading.Event()
        written = [offset]

        def wrote(count: int) -> None:
            with lock:
                written[0] += count
                done = written[0]
            if progress:
                progress(done)

        def worker() -> None:
            while not stop.is_set():
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                result = results[index]
                if not result.set_running_or_notify_cancel():
                    continue
                try:
                    self._fetch_range(key, fd, *ranges[index], stop, wrote)
                    result.set_result(None)
                except BaseException as exc:  # handed to the hashing thread
                    result.set_exception(exc)

        for number in range(min(DOWNLOAD_CONCURRENCY, len(ranges))):
            threading.Thread(target=worker, name=f"download-{number}", daemon=True).start()
        try:
            for (start, end), result in zip(ranges, results):
                result.result()
                position = start
                while position < end:
                    chunk = os.pread(fd, min(MiB, end - position), position)
                    if not chunk:
                        raise StorageError(f"the download of {self.config.uri(key)} is shorter than its ranges")
                    hasher.update(chunk)
                    position += len(chunk)
        finally:
            stop.set()
            for result in results:
                result.cancel()

    def _fetch_range(self, key: str, fd: int, start: int, end: int, stop: threading.Event,
                     wrote: Callable[[int], None]) -> None:
        uri = self.config.uri(key)
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
            answered = str(response.get("ContentRange", ""))
            if not answered.startswith(f"bytes {start}-{end - 1}/"):
                raise StorageError(f"downloading {uri} failed: the store answered the range {start}-{end - 1} with "
                                   f"{answered or 'the whole object'}", hint=UNREACHABLE_HINT)
            body = response["Body"]
            position = start
            while position < end and not stop.is_set():
                chunk = body.read(min(MiB, end - position))
                if not chunk:
                    raise StorageError(f"downloading {uri} failed: the range {start}-{end - 1} ended early")
                view = memoryview(chunk)
                while view:
                    count = os.pwrite(fd, view, position)
                    view = view[count:]
                    position += count
                wrote(len(chunk))
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "downloading", uri) from None

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


def _disk_error(exc: OSError, uri: str) -> StorageError:
    return StorageError(
        f"cannot write the download of {redact_url(uri)} to local disk: {exc.strerror}",
        hint="free space in the scratch directory or point --scratch-dir at a larger volume",
    )


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

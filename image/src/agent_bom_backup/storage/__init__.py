"""S3-compatible object storage: the only package that imports boto3's botocore.

botocore is imported directly, not through boto3 (whose ``boto3.compat`` pulls in
s3transfer and multiprocessing: ~0.1 s of start-up for nothing this tool uses), and
lazily: ``botocore.session`` and ``botocore.config`` when the first client is made (the
backup makes it in a thread while it connects to the database); only the exception
classes load with this package.

One module per concern (as wal-g's ``pkg/storages/s3/``), each changing for its own reasons:

* :mod:`.config` – what a bucket/prefix is (:class:`StorageConfig`), the one client
  factory (:func:`make_client`) and its retries;
* :mod:`.errors` – a botocore exception translated into one clear line (:func:`storage_error`);
* :mod:`.encryption` – requested server-side encryption confirmed from the store's answers
  (:class:`EncryptionCheck`);
* :mod:`.upload` – the multipart :class:`StreamUploader`;
* :mod:`.download` – downloads as one stream or parallel ranged GETs;
* :mod:`.objects` – the operations on one bucket/prefix (:class:`Storage`).

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

Every name is importable from ``agent_bom_backup.storage`` as before the split.
"""

from __future__ import annotations

from .config import (
    AWS_ENDPOINT_SUFFIXES,
    AWS_REGION_NAME,
    AWS_S3_ENDPOINT,
    CHECKSUM_MODES,
    MAX_POOL_CONNECTIONS,
    SSE_MODES,
    ProgressCallback,
    StorageConfig,
    _retries,
    is_aws_endpoint,
    make_client,
    parse_s3_uri,
)
from .download import (
    DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD,
    DOWNLOAD_CONCURRENCY,
    DOWNLOAD_RANGE_SIZE,
    RANGE_PROBE_BYTES,
    RANGE_PROBE_FACTOR,
    RANGE_PROBE_SLACK_S,
    ObjectDownload,
    RangeProbe,
    range_verdict,
)
from .encryption import ENCRYPTION_HINT, EncryptionCheck, kms_key_matches
from .errors import (
    SAME_SECOND_HINT,
    TRANSIENT_CODES,
    UNREACHABLE_HINT,
    IdTaken,
    _as_preflight,
    _disk_error,
    _first,
    same_second_refusal,
    storage_error,
)
from .objects import BackupEntry, Claim, ObjectInfo, Storage
from .upload import ABORT_GRACE_S, StreamUploader, UploadResult, _returns_buffer, crc32_checksum, multipart_etag

__all__ = [
    "ABORT_GRACE_S", "AWS_ENDPOINT_SUFFIXES", "AWS_REGION_NAME", "AWS_S3_ENDPOINT", "CHECKSUM_MODES",
    "DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD", "DOWNLOAD_CONCURRENCY", "DOWNLOAD_RANGE_SIZE", "ENCRYPTION_HINT",
    "MAX_POOL_CONNECTIONS", "RANGE_PROBE_BYTES", "RANGE_PROBE_FACTOR", "RANGE_PROBE_SLACK_S", "SAME_SECOND_HINT",
    "SSE_MODES", "TRANSIENT_CODES", "UNREACHABLE_HINT", "BackupEntry", "Claim", "EncryptionCheck", "IdTaken",
    "ObjectDownload", "ObjectInfo", "ProgressCallback", "RangeProbe", "Storage", "StorageConfig", "StreamUploader",
    "UploadResult", "_as_preflight", "_disk_error", "_first", "_retries", "_returns_buffer", "crc32_checksum",
    "is_aws_endpoint", "kms_key_matches", "make_client", "multipart_etag", "parse_s3_uri", "range_verdict",
    "same_second_refusal", "storage_error",
]

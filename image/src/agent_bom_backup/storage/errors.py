"""Error translation: a botocore exception becomes one clear line, what failed and what to do.

Stores such as Ceph RGW send error bodies without a ``<Message>`` (botocore then reports
``Message=None``), so no line depends on the store's wording. S3 errors are classified by
their code (:data:`_KNOWN_CODES`), then by what only the status or the request tells apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError, SSLError

from ..errors import PreflightError, RefusedError, StorageError
from ..log import redact_url

UNREACHABLE_HINT = "check endpointUrl, egress and that the store is up"
#: S3 answers that mean "busy or failing, try again later" (retried by botocore first)
TRANSIENT_CODES = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                   "ThrottlingException", "RequestTimeTooSkewed", "503", "500", "502", "504")
SAME_SECOND_HINT = "wait a second and retry; existing backups are never overwritten"


class IdTaken(RefusedError):
    """The backup id's claim belongs to another run (a run of the same second took it
    first): the backup takes the next free second instead."""


def same_second_refusal(dump_uri: str) -> IdTaken:
    """Two runs started in the same second picked the same backup id; this one stands back."""
    return IdTaken(f"{redact_url(dump_uri)} is taken: another backup started in the same second",
                   hint=SAME_SECOND_HINT)


@dataclass(frozen=True)
class _Refusal:
    """What the store answered to one request (a ``ClientError``), and about what."""

    action: str
    uri: str
    code: str
    status: int | None
    message: str
    request_id: str
    retry_attempts: object

    @classmethod
    def of(cls, exc: ClientError, action: str, uri: str) -> _Refusal:
        error = exc.response.get("Error", {})
        metadata = exc.response.get("ResponseMetadata", {})
        return cls(action=action, uri=uri, code=str(error.get("Code") or ""),
                   status=metadata.get("HTTPStatusCode"), message=str(error.get("Message") or ""),
                   request_id=str(metadata.get("RequestId") or ""), retry_attempts=metadata.get("RetryAttempts", 0))

    @property
    def attempts(self) -> int:
        return int(self.retry_attempts) + 1  # type: ignore[call-overload]

    @property
    def detail(self) -> str:
        return f"{self.code or self.status}: {self.message}" if self.message else f"{self.code or self.status}"


def storage_error(exc: Exception, action: str, uri: str, *, sse: str = "none") -> StorageError:
    """Translate a botocore exception into one clear line: what failed and what to do.

    ``sse`` is the server-side encryption a write asked for (it explains some refusals).
    """
    uri = redact_url(uri)
    if isinstance(exc, ClientError):
        return _refused(_Refusal.of(exc, action, uri), sse)
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


def _refused(answer: _Refusal, sse: str) -> StorageError:
    """The line for a store's error answer: by its code, else by what else it says."""
    known = _BY_CODE.get(answer.code)
    if known is not None:
        line, hint = known
        return StorageError(line.format(action=answer.action, uri=answer.uri, code=answer.code,
                                        detail=answer.detail), hint=hint)
    if answer.code == "MissingContentLength" or answer.status == 411:
        return _missing_content_length(answer)
    if answer.code == "InvalidRequest" and sse != "none":
        return _encryption_refused(answer, sse)
    if answer.code in TRANSIENT_CODES or (isinstance(answer.status, int) and answer.status >= 500
                                          and answer.status != 501):
        return _transient(answer)
    return _unexplained(answer)


#: S3 error codes whose meaning needs nothing else of the answer: the line (formatted with
#: the answer's ``action``, ``uri``, ``code`` and ``detail``) and the hint
_KNOWN_CODES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("NoSuchBucket",), "{action} failed: bucket of {uri} does not exist", "check the bucket name"),
    (("NoSuchKey", "404", "NotFound"), "{action} failed: no object at {uri}", "run `agent-bom-backup list`"),
    (("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"),
     "{action} failed: access denied to {uri} ({code})",
     "check the role's IAM policy (deploy/iam/) and the credentials in use"),
    (("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"),
     "{action} failed: {uri} is in another region ({code})", "fix bucketRegion"),
    (("InvalidObjectState",), "{action} failed: {uri} is archived (Glacier/Deep Archive)",
     "restore it first: aws s3api restore-object --restore-request Days=2 ..., then retry"),
    (("EntityTooSmall", "EntityTooLarge", "InvalidPart", "InvalidPartOrder"),
     "{action} failed: the store rejected a part of {uri} ({detail})",
     "if the store's minimum part size is larger, raise --part-size (AGENT_BOM_BACKUP_PART_SIZE)"),
    (("PreconditionFailed", "412"), "{action} failed: {uri} already exists (PreconditionFailed)",
     "another writer created it first; existing objects are never overwritten"),
)
_BY_CODE = {code: (line, hint) for codes, line, hint in _KNOWN_CODES for code in codes}


def _missing_content_length(a: _Refusal) -> StorageError:
    return StorageError(
        f"{a.action} failed for {a.uri}: the store answered 411 MissingContentLength: it does not accept "
        "botocore's streamed (aws-chunked) uploads with checksum trailers",
        hint="set checksumMode to auto or when_required (AGENT_BOM_BACKUP_CHECKSUM_MODE)",
    )


def _encryption_refused(a: _Refusal, sse: str) -> StorageError:
    return StorageError(
        f"{a.action} failed for {a.uri}: the store refused the write with server-side encryption {sse} "
        f"({a.detail})",
        hint="stores such as Ceph RGW refuse encryption over plain http (`rgw crypt require ssl`): use "
        "the store's https endpoint, or set encryption.enabled: false (AGENT_BOM_BACKUP_SSE=none) if it "
        "encrypts at rest by itself",
    )


def _transient(a: _Refusal) -> StorageError:
    return StorageError(
        f"{a.action} failed for {a.uri}: the S3 endpoint answered {a.status} {a.code or ''}".rstrip()
        + f" on {a.attempts} attempt{'s' if a.attempts > 1 else ''}" + (f" ({a.message})" if a.message else ""),
        hint="the store is overloaded or failing; the next scheduled run retries, "
        "check the store's health if it persists",
    )


def _unexplained(a: _Refusal) -> StorageError:
    where = f"look up request {a.request_id} in the store's log" if a.request_id else "check the store's log"
    return StorageError(
        f"{a.action} failed for {a.uri}: the store answered {a.status} {a.detail}" if a.status else
        f"{a.action} failed for {a.uri}: {a.detail}",
        hint=where + ("" if a.message else " (the store gave no reason)"),
    )


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

"""Encryption confirmation: requested server-side encryption is confirmed from the store's
own answers for every object written (some stores accept the header and store plaintext)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import RefusedError
from ..log import event, get_logger, redact_url
from ..manifest import MANIFEST_SUFFIX
from .config import StorageConfig

ENCRYPTION_HINT = (
    "make the store apply it (Ceph RGW 16 has no SSE-S3: use aws:kms with `rgw crypt s3 kms backend`, over "
    "https or with `rgw crypt require ssl = false`), or set encryption.enabled: false (AGENT_BOM_BACKUP_SSE=none) "
    "if the store encrypts at rest by itself"
)


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

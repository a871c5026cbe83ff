"""The ``verify`` command: a backup checked against its manifest.

* :func:`verify_backup`: the size and SHA-256 of the dump and roles objects, streamed;
  with ``deep``, a restore into a scratch database too (:func:`deep_verify`).

It sits above both the restore (which it runs) and :mod:`verify` (the leaf that compares
a database with a manifest).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .agecrypt import require_identity
from .catalog import BackupSource, NewestUnusableError, resolve
from .errors import ChangedError, VerifyError
from .log import event, get_logger
from .manifest import BackupKeys, Manifest
from .report import RestoreReport
from .restore import RestoreConfig, run_restore
from .scratchdb import ScratchTarget, scratch_database
from .storage import Storage, StorageConfig
from .verify import VerificationResult, with_verdict


@dataclass
class ObjectCheck:
    key: str
    expected_size: int
    actual_size: int | None
    expected_sha256: str
    actual_sha256: str | None

    @property
    def ok(self) -> bool:
        return self.expected_size == self.actual_size and self.expected_sha256 == self.actual_sha256

    def problem(self) -> str | None:
        if self.actual_size is None:
            return f"{self.key} is missing"
        if self.actual_size != self.expected_size:
            return f"{self.key} is {self.actual_size} bytes, the manifest says {self.expected_size}"
        if self.actual_sha256 != self.expected_sha256:
            return (f"{self.key}: SHA-256 {self.actual_sha256} differs from the manifest's "
                    f"{self.expected_sha256} (corrupted or replaced)")
        return None


@dataclass
class DeepResult:
    ok: bool
    target: str
    database: str
    server_version: str | None
    fidelity: str  # "full" or "no-owner/no-privileges"
    throwaway: bool
    seconds: float
    problems: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    tables: int = 0
    tenants: int = 0
    categories_skipped: list[str] = field(default_factory=list)
    verification: VerificationResult | None = None
    #: relations the backup left out by configuration (not in it, so not restored)
    excluded_tables: list[str] = field(default_factory=list)


@dataclass
class VerifyResult:
    uri: str
    backup_id: str
    objects: list[ObjectCheck]
    seconds: float
    deep: DeepResult | None = None
    #: the age recipients of an encrypted backup (without --deep only the ciphertext is checked)
    encrypted_to: list[str] | None = None

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.objects) and (self.deep is None or self.deep.ok)

    def problems(self) -> list[str]:
        found = [p for o in self.objects if (p := o.problem())]
        if self.deep is not None:
            found += self.deep.problems
        return found

    def to_dict(self) -> dict[str, Any]:
        return with_verdict(self)


def _hash_stream(chunks: Iterator[bytes]) -> tuple[int, str]:
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return size, hasher.hexdigest()


def _check_object(storage: Storage, key: str, size: int, sha256: str) -> ObjectCheck:
    if not storage.exists(key):
        return ObjectCheck(key, size, None, sha256, None)
    actual_size, digest = _hash_stream(storage.stream(key))
    return ObjectCheck(key, size, actual_size, sha256, digest)


def verify_backup(
    config: StorageConfig,
    source: str,
    *,
    deep: bool = False,
    scratch_url: str | None = None,
    pg_bin_dirs: tuple[str, ...] = (),
    scratch_dir: str | None = None,
    identity_file: str | None = None,
) -> VerifyResult:
    """Size and SHA-256 of the dump and roles objects against the manifest, streamed
    (no temporary file); with ``deep`` also a restore into a scratch database that is
    verified against the manifest and dropped. ``latest`` is resolved by the backup
    catalog as ``restore latest`` resolves it."""
    started = time.monotonic()
    parsed = BackupSource.parse(source, config)
    storage = Storage(parsed.storage)
    try:
        resolved = resolve(storage, parsed)
    except NewestUnusableError as exc:
        raise VerifyError(exc.message, hint="verify an older backup by its URI (agent-bom-backup list)") from None
    keys, manifest = resolved.keys, resolved.manifest
    uri = storage.config.uri(keys.dump)
    event(get_logger(), "verifying backup", uri=uri, bytes=manifest.dump.size)
    checks = [_check_object(storage, keys.dump, manifest.dump.size, manifest.dump.sha256)]
    if manifest.roles is not None:
        checks.append(_check_object(storage, manifest.roles.key, manifest.roles.size, manifest.roles.sha256))
    result = VerifyResult(uri=uri, backup_id=keys.backup_id, objects=checks, seconds=0.0,
                          encrypted_to=list(manifest.encryption.recipients) if manifest.encryption else None)
    if deep and all(c.ok for c in checks):
        result.deep = deep_verify(storage, keys, manifest, scratch_url=scratch_url, pg_bin_dirs=pg_bin_dirs,
                                  scratch_dir=scratch_dir, identity_file=identity_file)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def deep_verify(
    storage: Storage,
    keys: BackupKeys,
    manifest: Manifest,
    *,
    scratch_url: str | None,
    pg_bin_dirs: tuple[str, ...] = (),
    scratch_dir: str | None = None,
    identity_file: str | None = None,
) -> DeepResult:
    """Restore the backup into a fresh scratch database with the restore machinery,
    verify rows, tenants and the schema fingerprint, then drop the database (or the
    throwaway cluster).

    A restore that fails after it started changing the scratch database (pg_restore
    errors, a verification mismatch) is this backup's failure: its cause becomes a
    problem line (``verify`` exits 7). Refusals and preflight failures keep their codes."""
    started = time.monotonic()
    # an encrypted backup's identity is proven before a scratch database is made
    require_identity(storage.get_bytes, manifest, identity_file)
    with scratch_database(scratch_url, manifest.source.server_major, pg_bin_dirs) as target:
        full = target.superuser
        config = RestoreConfig(
            source=storage.config.uri(keys.dump),
            target_url=target.conninfo,
            storage=storage.config,
            live_source_url=None,
            create_missing_roles=True,
            no_owner=not full,
            no_privileges=not full,
            jobs=2,
            safety_backup=False,
            scratch_dir=scratch_dir,
            pg_bin_dirs=pg_bin_dirs,
            purpose="verify --deep",
            identity_file=identity_file,
        )
        outcome = run_restore(config)
        problems: list[str] = []
        error = outcome.error
        if isinstance(error, ChangedError):
            verification = outcome.report.verification
            problems = (verification.problems() if verification is not None else []) or [error.cause.message]
        elif error is not None:
            raise error
        return _deep_result(outcome.report, target, manifest, problems, round(time.monotonic() - started, 1))


def _deep_result(report: RestoreReport, target: ScratchTarget, manifest: Manifest, problems: list[str],
                 seconds: float) -> DeepResult:
    verification = report.verification
    return DeepResult(
        ok=not problems,
        target=target.display,
        database=target.database,
        server_version=report.target_server_version,
        fidelity="full" if target.superuser else "no-owner/no-privileges",
        throwaway=target.throwaway,
        seconds=seconds,
        problems=problems,
        roles_created=list(report.roles_created),
        tables=len(verification.tables) if verification else 0,
        tenants=len(verification.tenant_totals_actual) if verification else 0,
        categories_skipped=list(verification.fingerprint_categories_skipped) if verification else [],
        verification=verification,
        excluded_tables=list(manifest.excluded_tables),
    )

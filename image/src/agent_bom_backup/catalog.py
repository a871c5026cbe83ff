"""The backup catalog: the backups under one prefix, and what state each one is in.

(PostgreSQL's own catalog queries are in :mod:`pgcatalog`.)

One classification, used by ``list``, ``verify``, ``check``, ``prune``, ``restore`` and the
restore drill:

* ``complete``: dump, roles object and manifest are there; the manifest parses, names
  these objects and records their sizes. Restorable.
* ``incomplete``: the run did not finish writing it (a claim only, a dump without its
  manifest, a manifest whose dump is gone). A failed run, or one still running.
* ``unreadable``: it was committed (it has a manifest) but cannot be read or trusted: the
  manifest cannot be fetched (AccessDenied, 5xx after retries, KMS throttling) or parsed,
  or it does not describe the objects next to it (another key, other sizes, a missing
  roles object). Never deleted by ``prune``; ``restore latest`` stops at it.
* ``archived``: the dump (or manifest) is in an archival storage class (Glacier, Deep
  Archive) and must be restored from the archive before it can be read.

``check`` runs under the backup role, which may list but not read: it classifies from the
listing alone (complete = dump and manifest present; archived by storage class) and says
so. Everything else reads the manifests.

Ages are measured from the UTC timestamp in the backup id
(``agent-bom-YYYYMMDDTHHMMSSZ``, the moment the backup started): never younger than the
data the backup holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .errors import BackupError, ConfigError, RefusedError, StorageError, VerifyError
from .log import event, get_logger, redact_url
from .manifest import BackupKeys, Manifest, backup_time
from .storage import BackupEntry, ObjectInfo, Storage, StorageConfig, parse_s3_uri
from .units import human_age

COMPLETE, INCOMPLETE, UNREADABLE, ARCHIVED = "complete", "incomplete", "unreadable", "archived"
STATES = (COMPLETE, INCOMPLETE, UNREADABLE, ARCHIVED)
ARCHIVED_CLASSES = ("GLACIER", "DEEP_ARCHIVE")

REASON_NO_MANIFEST = "no manifest: the backup failed or is still running"
REASON_NO_DUMP = "no dump object: deleted, or the upload never completed"
REASON_CLAIM_ONLY = "only its claim: the backup started and wrote nothing yet (failed or still running)"


@dataclass
class BackupStatus:
    """One backup as an operator sees it."""

    backup_id: str
    uri: str
    created_at: datetime
    age_seconds: float
    size: int | None
    state: str
    reason: str | None
    objects: dict[str, str] = field(default_factory=dict)  # dump/roles/manifest/claim -> key present
    object_sizes: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # from the manifest, when read
    by_listing: bool = False  # classified from the listing alone (no manifest read)
    manifest: Manifest | None = field(default=None, repr=False, compare=False)
    keys: BackupKeys | None = field(default=None, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    @property
    def committed(self) -> bool:
        """Finished by its run (a manifest was written): everything but incomplete."""
        return self.state != INCOMPLETE

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "uri": self.uri,
            "created_at": self.created_at.isoformat(),
            "age_seconds": round(self.age_seconds, 1),
            "age": human_age(self.age_seconds),
            "size": self.size,
            "state": self.state,
            "complete": self.complete,
            "reason": self.reason,
            "by_listing": self.by_listing,
            "objects": dict(self.objects),
            "object_sizes": dict(self.object_sizes),
            "details": dict(self.details),
        }


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(timezone.utc)


def _archived(info: ObjectInfo | None) -> bool:
    return info is not None and (info.storage_class or "") in ARCHIVED_CLASSES


def _objects(entry: BackupEntry) -> list[tuple[str, ObjectInfo]]:
    found = (("dump", entry.dump), ("roles", entry.roles), ("manifest", entry.manifest), ("claim", entry.claim))
    return [(kind, info) for kind, info in found if info is not None]


def classify_listing(config: StorageConfig, entry: BackupEntry, now: datetime) -> BackupStatus:
    """A backup's state from the listing alone (which objects are there, their storage
    classes); reading the manifest may downgrade it later (:func:`list_backups`)."""
    created = backup_time(entry.keys.backup_id)
    assert created is not None  # Storage.list_backups only returns keys that match the naming
    state, reason = COMPLETE, None
    if entry.dump is None and entry.manifest is None:
        state, reason = INCOMPLETE, (REASON_CLAIM_ONLY if entry.claim is not None else REASON_NO_DUMP)
    elif entry.dump is None:
        state, reason = INCOMPLETE, REASON_NO_DUMP
    elif entry.manifest is None:
        state, reason = INCOMPLETE, REASON_NO_MANIFEST
    elif _archived(entry.dump) or _archived(entry.manifest):
        archived = entry.dump if _archived(entry.dump) else entry.manifest
        assert archived is not None
        state, reason = ARCHIVED, _archived_reason(config, archived)
    return BackupStatus(
        backup_id=entry.keys.backup_id,
        uri=config.uri(entry.keys.dump),
        created_at=created,
        age_seconds=(now - created).total_seconds(),
        size=entry.dump.size if entry.dump else None,
        state=state,
        reason=reason,
        objects={kind: info.key for kind, info in _objects(entry)},
        object_sizes={kind: info.size for kind, info in _objects(entry)},
        keys=entry.keys,
    )


def _archived_reason(config: StorageConfig, info: ObjectInfo) -> str:
    return (f"{info.key.rsplit('/', 1)[-1]} is in {info.storage_class}: restore it from the archive first "
            f"(aws s3api restore-object --bucket {config.bucket} --key {info.key} "
            "--restore-request Days=2), then retry")


def _restored_from_archive(storage: Storage, info: ObjectInfo) -> bool:
    """An archived object with a finished archive restore has a readable copy (HeadObject)."""
    try:
        head = storage.head(info.key)
    except StorageError:
        return False
    return 'ongoing-request="false"' in str(head.get("Restore", ""))


def _read_manifest(storage: Storage, entry: BackupEntry, status: BackupStatus) -> None:
    """Read the manifest; downgrade ``status`` when it cannot be read or does not
    describe the objects listed next to it."""
    keys = entry.keys
    if status.state == ARCHIVED:
        archived = [info for info in (entry.dump, entry.manifest) if _archived(info)]
        if not all(_restored_from_archive(storage, info) for info in archived if info is not None):
            return
        status.state, status.reason = COMPLETE, None
    try:
        manifest = Manifest.from_json(storage.get_bytes(keys.manifest), key=storage.config.uri(keys.manifest))
    except BackupError as exc:
        status.state, status.reason = UNREADABLE, f"manifest unreadable: {exc.message}"
        return
    status.manifest = manifest
    status.details = {
        "database": manifest.source.database,
        "server_version": manifest.source.server_version,
        "pg_dump_version": manifest.client.pg_dump_version,
        "snapshot_time": manifest.snapshot_time,
        "finished_at": manifest.finished_at,
        "sha256": manifest.dump.sha256,
        "tables": len(manifest.tables),
        "tenants": len(manifest.tenant_totals()),
        "format_version": manifest.format_version,
        "encrypted_to": manifest.encryption.recipients if manifest.encryption else None,
    }
    problem = manifest_mismatch(manifest, keys, entry)
    if problem:
        status.state, status.reason = UNREADABLE, problem


def manifest_mismatch(manifest: Manifest, keys: BackupKeys, entry: BackupEntry | None) -> str | None:
    """Why ``manifest`` does not describe the objects of ``keys`` as listed (None: it does)."""
    if manifest.dump.key != keys.dump:
        return f"manifest names another object: {manifest.dump.key}"
    if entry is None:
        return None
    if entry.dump is not None and manifest.dump.size != entry.dump.size:
        return (f"size differs from the manifest: the dump is {entry.dump.size} bytes, "
                f"the manifest says {manifest.dump.size} (truncated or replaced)")
    if manifest.roles is not None and manifest.roles.key != keys.roles:
        return f"manifest names another roles object: {manifest.roles.key}"
    if manifest.roles is not None and entry.roles is None:
        return "the roles object named by the manifest is missing"
    if manifest.roles is not None and entry.roles is not None and manifest.roles.size != entry.roles.size:
        return (f"size differs from the manifest: the roles object is {entry.roles.size} bytes, "
                f"the manifest says {manifest.roles.size}")
    return None


def list_backups(storage: Storage, *, read_manifests: bool = True, prefix: str | None = None,
                 now: datetime | None = None) -> list[BackupStatus]:
    """Backups under ``prefix`` (default: the configured one), newest first.

    With ``read_manifests`` every committed backup's manifest is read (GetObject) and
    checked against the listing; otherwise the state comes from the listing alone
    (ListBucket only)."""
    moment = _now(now)
    statuses = []
    for entry in storage.list_backups(prefix):
        status = classify_listing(storage.config, entry, moment)
        if read_manifests and status.state in (COMPLETE, ARCHIVED):
            _read_manifest(storage, entry, status)
        status.by_listing = not read_manifests
        statuses.append(status)
    return statuses


# --------------------------------------------------------------------------- resolving
class NewestUnusableError(RefusedError):
    """``latest``'s newest committed backup cannot be used, and falling back was not asked."""

    def __init__(self, message: str, *, hint: str, status: BackupStatus) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass
class ResolvedBackup:
    """The backup a URI or ``latest`` names, its manifest, and what was passed over."""

    keys: BackupKeys
    manifest: Manifest
    skipped: list[BackupStatus] = field(default_factory=list)  # newer committed backups (--allow-older)


@dataclass(frozen=True)
class BackupSource:
    """What a restore or ``verify`` is pointed at, parsed once at the edge: ``latest`` (the
    newest backup under the configured bucket and prefix), ``s3://bucket/prefix/`` (the
    newest under that prefix) or one backup's object URI."""

    text: str
    #: the storage the source names: an ``s3://`` URI brings its own bucket
    storage: StorageConfig
    #: the prefix to take the newest backup under; None: ``keys`` names one backup
    prefix: str | None
    keys: BackupKeys | None = None

    @classmethod
    def parse(cls, source: str, config: StorageConfig) -> BackupSource:
        """The runbook passes only a URI and a region, so an ``s3://`` URI brings its own
        bucket; ``latest`` needs the configured one. Errors, in this order: no bucket for
        ``latest``, a malformed URI, the storage configuration, a URI that names no backup."""
        if source == "latest":
            if not config.bucket:
                raise ConfigError("'latest' needs a bucket",
                                  hint="set --bucket / AGENT_BOM_BACKUP_BUCKET, or pass an s3:// URI")
            config.validate()
            return cls(source, config, config.prefix)
        bucket, key = parse_s3_uri(source)
        storage = replace(config, bucket=bucket)
        storage.validate()
        if not key or key.endswith("/"):
            return cls(source, storage, key)
        return cls(source, storage, None, _keys_of(source))


def storage_prefix(source: str, configured: str) -> str | None:
    """The prefix ``source`` asks for the newest backup under (None: it names one backup)."""
    if source == "latest":
        return configured
    _, key = parse_s3_uri(source)
    return key if not key or key.endswith("/") else None


def resolve(storage: Storage, source: str | BackupSource, *, allow_older: bool = False) -> ResolvedBackup:
    """``latest``, ``s3://bucket/prefix/`` or an object URI -> the backup and its manifest.

    For the newest backup: incomplete ones (failed or running runs) are skipped with a
    warning; an unreadable or archived one stops it, naming the backup and why, unless
    ``allow_older`` (then it is recorded as skipped and the next one is taken)."""
    if isinstance(source, str):
        source = BackupSource.parse(source, storage.config)
    if source.keys is not None:
        return ResolvedBackup(source.keys, load_manifest(storage, source.keys))
    prefix = source.prefix
    assert prefix is not None
    log = get_logger()
    location = f"s3://{storage.config.bucket}/{prefix.strip('/')}/"
    skipped: list[BackupStatus] = []
    for status in list_backups(storage, prefix=prefix):
        if status.state == INCOMPLETE:
            event(log, "skipping incomplete backup", level=logging.WARNING, backup=status.backup_id, reason=status.reason)
            continue
        if status.state == COMPLETE:
            assert status.manifest is not None and status.keys is not None
            return ResolvedBackup(status.keys, status.manifest, skipped)
        if not allow_older:
            raise NewestUnusableError(
                f"the newest backup under {location}, {status.backup_id}, is {status.state}: {status.reason}",
                hint="fix it and retry, or pass --allow-older (AGENT_BOM_RESTORE_ALLOW_OLDER=true) to take the "
                "newest complete backup instead, with a wider data-loss window",
                status=status,
            )
        event(log, f"skipping {status.state} backup (--allow-older)", level=logging.WARNING, backup=status.backup_id,
              reason=status.reason)
        skipped.append(status)
    raise VerifyError(
        f"no complete backup under {location}",
        hint="check the bucket/prefix, or run `agent-bom-backup list` to see incomplete ones",
    )


def _keys_of(source: str) -> BackupKeys:
    _, key = parse_s3_uri(source)
    keys = BackupKeys.from_any_key(key) or BackupKeys.from_any_key(key + ".dump")
    if keys is None:
        raise ConfigError(
            f"{redact_url(source)} does not name an agent-bom backup",
            hint="expected .../agent-bom-YYYYMMDDTHHMMSSZ.dump; run `agent-bom-backup list`",
        )
    return keys


def load_manifest(storage: Storage, keys: BackupKeys) -> Manifest:
    """The manifest of the backup named by ``keys``; a clear error when there is none or
    it describes another dump."""
    if not storage.exists(keys.manifest):
        if not storage.exists(keys.dump):
            raise VerifyError(
                f"no backup at {storage.config.uri(keys.dump)}",
                hint="check the timestamp; run `agent-bom-backup list`, or pass 'latest'",
            )
        raise VerifyError(
            f"backup {storage.config.uri(keys.dump)} has no manifest: it is incomplete (the job failed or is still running)",
            hint="restore another backup; run `agent-bom-backup list` to see complete ones",
        )
    manifest = Manifest.from_json(storage.get_bytes(keys.manifest), key=storage.config.uri(keys.manifest))
    if manifest.dump.key != keys.dump:
        raise VerifyError(
            f"manifest {storage.config.uri(keys.manifest)} describes {manifest.dump.key}, not {keys.dump}",
            hint="the manifest was copied or renamed; do not trust this backup",
        )
    return manifest


# --------------------------------------------------------------------------- check
@dataclass
class CheckResult:
    location: str
    max_age_seconds: float
    newest: BackupStatus | None
    newer_incomplete: int

    @property
    def ok(self) -> bool:
        return self.newest is not None and self.newest.age_seconds <= self.max_age_seconds

    def line(self) -> str:
        limit = human_age(self.max_age_seconds)
        note = ""
        if self.newer_incomplete:
            note = (f"; {self.newer_incomplete} newer incomplete backup(s): the latest run(s) failed "
                    "or are still running")
        if self.newest is None:
            return f"STALE: no complete backup under {self.location} (limit {limit}){note}"
        age = human_age(self.newest.age_seconds)
        kind = "complete backup" if self.newest.complete else f"backup ({self.newest.state})"
        if not self.ok:
            return (f"STALE: newest {kind} {self.newest.backup_id} is {age} old, "
                    f"older than the limit of {limit}: {self.newest.uri}{note}")
        return (f"OK: newest {kind} {self.newest.backup_id} is {age} old (limit {limit}): "
                f"{self.newest.uri}{note} (by listing: dump and manifest present)")


def check_freshness(storage: Storage, max_age_seconds: float, *, now: datetime | None = None) -> CheckResult:
    """The newest committed backup by listing (dump and manifest present; an archived one
    counts: the backup ran) and its age. Needs ``s3:ListBucket`` only, so it runs with
    the backup role's policy."""
    if max_age_seconds <= 0:
        raise ConfigError("--max-age must be positive", hint="e.g. 26h for a daily schedule")
    statuses = list_backups(storage, read_manifests=False, now=now)
    newest = next((s for s in statuses if s.committed), None)
    newer_incomplete = 0
    for status in statuses:
        if status is newest:
            break
        newer_incomplete += 1
    return CheckResult(
        location=f"s3://{storage.config.bucket}/{storage.config.prefix.strip('/')}/",
        max_age_seconds=max_age_seconds,
        newest=newest,
        newer_incomplete=newer_incomplete,
    )

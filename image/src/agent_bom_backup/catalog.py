"""The backup catalog: the backups under one prefix, and which of them are complete.

(PostgreSQL's own catalog queries are in :mod:`pgcatalog`.)

Ages are measured from the UTC timestamp in the backup id
(``agent-bom-YYYYMMDDTHHMMSSZ``, the moment the backup started), so ``check`` needs the
object listing only (``s3:ListBucket``) and never a GetObject: it runs under the backup
role's least-privilege policy. An age measured from the start of a backup is never
younger than the data it holds.

Completeness has two strengths:

* by listing (``check``, ``prune``): the dump and the manifest objects both exist;
* by reading the manifest (``list``, ``verify``): additionally the manifest parses,
  names this dump, and the listed sizes equal the recorded ones.

``prune`` deliberately uses the listing definition: a manifest that cannot be read
(a permission or KMS problem) must never make a backup look deletable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import BackupError, ConfigError
from .manifest import Manifest, backup_time
from .storage import BackupEntry, Storage
from .units import human_age

REASON_NO_MANIFEST = "no manifest: the backup failed or is still running"
REASON_NO_DUMP = "no dump object: deleted, or the upload never completed"


# --------------------------------------------------------------------------- list
@dataclass
class BackupStatus:
    """One backup as an operator sees it."""

    backup_id: str
    uri: str
    created_at: datetime
    age_seconds: float
    size: int | None
    complete: bool
    reason: str | None
    objects: dict[str, str] = field(default_factory=dict)  # dump/roles/manifest -> key present
    object_sizes: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # from the manifest, when read

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["age_seconds"] = round(self.age_seconds, 1)
        data["age"] = human_age(self.age_seconds)
        return data


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(timezone.utc)


def _status_from_listing(storage: Storage, entry: BackupEntry, now: datetime) -> BackupStatus:
    created = backup_time(entry.keys.backup_id)
    assert created is not None  # list_backups only returns keys that match the naming
    objects = {
        kind: info.key
        for kind, info in (("dump", entry.dump), ("roles", entry.roles), ("manifest", entry.manifest),
                           ("claim", entry.claim))
        if info is not None
    }
    sizes = {
        kind: info.size
        for kind, info in (("dump", entry.dump), ("roles", entry.roles), ("manifest", entry.manifest),
                           ("claim", entry.claim))
        if info is not None
    }
    reason = None
    if entry.dump is None:
        reason = REASON_NO_DUMP
    elif entry.manifest is None:
        reason = REASON_NO_MANIFEST
    return BackupStatus(
        backup_id=entry.keys.backup_id,
        uri=storage.config.uri(entry.keys.dump),
        created_at=created,
        age_seconds=(now - created).total_seconds(),
        size=entry.dump.size if entry.dump else None,
        complete=reason is None,
        reason=reason,
        objects=objects,
        object_sizes=sizes,
    )


def _check_manifest(storage: Storage, entry: BackupEntry, status: BackupStatus) -> None:
    """Read the manifest and downgrade ``status`` when it does not describe these objects."""
    keys = entry.keys
    try:
        manifest = Manifest.from_json(storage.get_bytes(keys.manifest), key=storage.config.uri(keys.manifest))
    except BackupError as exc:
        status.complete, status.reason = False, f"manifest unreadable: {exc.message}"
        return
    status.details = {
        "database": manifest.source.database,
        "server_version": manifest.source.server_version,
        "pg_dump_version": manifest.client.pg_dump_version,
        "snapshot_time": manifest.snapshot_time,
        "finished_at": manifest.finished_at,
        "sha256": manifest.dump.sha256,
        "tables": len(manifest.tables),
        "tenants": len(manifest.tenant_totals()),
    }
    problem = None
    if manifest.dump.key != keys.dump:
        problem = f"manifest names another object: {manifest.dump.key}"
    elif entry.dump is not None and manifest.dump.size != entry.dump.size:
        problem = (f"size differs from the manifest: the dump is {entry.dump.size} bytes, "
                   f"the manifest says {manifest.dump.size} (truncated or replaced)")
    elif manifest.roles is not None and manifest.roles.key != keys.roles:
        problem = f"manifest names another roles object: {manifest.roles.key}"
    elif manifest.roles is not None and entry.roles is None:
        problem = "the roles object named by the manifest is missing"
    elif manifest.roles is not None and entry.roles is not None and manifest.roles.size != entry.roles.size:
        problem = (f"size differs from the manifest: the roles object is {entry.roles.size} bytes, "
                   f"the manifest says {manifest.roles.size}")
    if problem:
        status.complete, status.reason = False, problem


def list_backups(storage: Storage, *, read_manifests: bool = True, now: datetime | None = None) -> list[BackupStatus]:
    """Backups under the configured prefix, newest first.

    With ``read_manifests`` every manifest is read (GetObject) and checked against the
    listing; otherwise completeness is judged from the listing alone (ListBucket only).
    """
    moment = _now(now)
    statuses = []
    for entry in storage.list_backups():
        status = _status_from_listing(storage, entry, moment)
        if read_manifests and status.complete:
            _check_manifest(storage, entry, status)
        statuses.append(status)
    return statuses



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
        if not self.ok:
            return (f"STALE: newest complete backup {self.newest.backup_id} is {age} old, "
                    f"older than the limit of {limit}: {self.newest.uri}{note}")
        return (f"OK: newest complete backup {self.newest.backup_id} is {age} old (limit {limit}): "
                f"{self.newest.uri}{note}")


def check_freshness(storage: Storage, max_age_seconds: float, *, now: datetime | None = None) -> CheckResult:
    """The newest complete backup (by listing: dump and manifest present) and its age.

    Needs ``s3:ListBucket`` only, so it runs with the backup role's policy."""
    if max_age_seconds <= 0:
        raise ConfigError("--max-age must be positive", hint="e.g. 26h for a daily schedule")
    statuses = list_backups(storage, read_manifests=False, now=now)
    newest = next((s for s in statuses if s.complete), None)
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

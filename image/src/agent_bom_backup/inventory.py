"""Operator tooling over the backups under one prefix: list, verify, check, prune.

Plain functions returning dataclasses; the click layer (cli.py) formats them.

Ages are measured from the UTC timestamp in the backup id
(``agent-bom-YYYYMMDDTHHMMSSZ``, the moment the backup started), so ``check`` and
``prune`` need the object listing only (``s3:ListBucket``) and never a GetObject:
``check`` runs under the backup role's least-privilege policy. An age measured from
the start of a backup is never younger than the data it holds.

Completeness has two strengths:

* by listing (``check``, ``prune``): the dump and the manifest objects both exist;
* by reading the manifest (``list``, ``verify``): additionally the manifest parses,
  names this dump, and the listed sizes equal the recorded ones.

``prune`` deliberately uses the listing definition: a manifest that cannot be read
(a permission or KMS problem) must never make a backup look deletable.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import BackupError, ConfigError, VerifyError
from .log import event, get_logger
from .manifest import BackupKeys, Manifest, backup_time
from .restore import load_manifest, resolve_backup, storage_for_source
from .storage import BackupEntry, Storage, StorageConfig, storage_error

DAY = 86400
DEFAULT_INCOMPLETE_GRACE_S = DAY
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
        for kind, info in (("dump", entry.dump), ("roles", entry.roles), ("manifest", entry.manifest))
        if info is not None
    }
    sizes = {
        kind: info.size
        for kind, info in (("dump", entry.dump), ("roles", entry.roles), ("manifest", entry.manifest))
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


# --------------------------------------------------------------------------- prune
@dataclass
class PruneDecision:
    status: BackupStatus
    delete: bool
    reason: str


@dataclass
class PrunePlan:
    location: str
    keep_days: float
    keep_last: int
    incomplete_grace_seconds: float
    decisions: list[PruneDecision]

    @property
    def doomed(self) -> list[PruneDecision]:
        return [d for d in self.decisions if d.delete]

    @property
    def kept(self) -> list[PruneDecision]:
        return [d for d in self.decisions if not d.delete]

    def doomed_objects(self) -> tuple[list[str], list[str]]:
        """(manifest keys, other keys) of the backups to delete: manifests go first."""
        manifests, others = [], []
        for decision in self.doomed:
            for kind, key in decision.status.objects.items():
                (manifests if kind == "manifest" else others).append(key)
        return manifests, others

    def doomed_bytes(self) -> int:
        return sum(sum(d.status.object_sizes.values()) for d in self.doomed)


@dataclass
class PruneResult:
    plan: PrunePlan
    dry_run: bool
    versioning: str  # "Enabled", "Suspended", "off" or "unknown (...)"
    deleted: list[str] = field(default_factory=list)

    @property
    def versioned(self) -> bool:
        return self.versioning in ("Enabled", "Suspended")


def plan_prune(
    storage: Storage,
    keep_days: float,
    keep_last: int,
    *,
    incomplete_grace_seconds: float = DEFAULT_INCOMPLETE_GRACE_S,
    now: datetime | None = None,
) -> PrunePlan:
    """Decide, from the listing alone, which backups expire.

    Kept: the ``keep_last`` newest complete backups (at least the newest one, always),
    every complete backup younger than ``keep_days``, and every incomplete backup younger
    than ``keep_days`` or than the grace period (it may still be running). Everything
    else is deleted: expired complete backups and failed runs (dump without manifest,
    manifest or roles without dump) older than the keep window.
    """
    if keep_days < 0:
        raise ConfigError("--keep-days must be 0 or more")
    if keep_last < 1:
        raise ConfigError("--keep-last must be at least 1: the newest complete backup is never deleted")
    if incomplete_grace_seconds < 0:
        raise ConfigError("--incomplete-grace must be 0 or more")
    window = keep_days * DAY
    statuses = list_backups(storage, read_manifests=False, now=now)
    decisions = []
    complete_seen = 0
    for status in statuses:
        age = status.age_seconds
        if status.complete:
            complete_seen += 1
            if complete_seen == 1:
                decisions.append(PruneDecision(status, False, "newest complete backup (never deleted)"))
            elif complete_seen <= keep_last:
                decisions.append(PruneDecision(status, False, f"one of the {keep_last} newest complete backups"))
            elif age < window:
                decisions.append(PruneDecision(status, False, f"younger than {_days(keep_days)}"))
            else:
                why = f"older than {_days(keep_days)} and not among the {keep_last} newest complete backups"
                decisions.append(PruneDecision(status, True, why))
        else:
            limit = max(window, incomplete_grace_seconds)
            if age < window:
                decisions.append(PruneDecision(status, False, f"incomplete, younger than {_days(keep_days)}"))
            elif age < limit:
                grace = human_age(incomplete_grace_seconds)
                decisions.append(PruneDecision(status, False, f"incomplete, younger than the {grace} grace "
                                                              "(may still be running)"))
            else:
                why = f"incomplete ({status.reason}) and older than {human_age(limit)}"
                decisions.append(PruneDecision(status, True, why))
    return PrunePlan(
        location=f"s3://{storage.config.bucket}/{storage.config.prefix.strip('/')}/",
        keep_days=keep_days,
        keep_last=keep_last,
        incomplete_grace_seconds=incomplete_grace_seconds,
        decisions=decisions,
    )


def bucket_versioning(storage: Storage) -> str:
    """``Enabled``, ``Suspended``, ``off`` or ``unknown (...)`` (GetBucketVersioning)."""
    try:
        response = storage.client.get_bucket_versioning(Bucket=storage.config.bucket)
    except Exception as exc:  # noqa: BLE001 - classified by the storage module
        error = storage_error(exc, "reading the versioning state of", f"s3://{storage.config.bucket}")
        return f"unknown ({error.message})"
    return str(response.get("Status") or "off")


def apply_prune(storage: Storage, plan: PrunePlan, *, dry_run: bool) -> PruneResult:
    """Delete what ``plan`` dooms: every manifest first, then the dumps and roles objects,
    so an interrupted prune leaves backups that look incomplete, never a manifest whose
    dump is gone. On a versioned bucket this removes current versions only
    (S3 writes delete markers; older versions stay until a lifecycle rule expires them)."""
    result = PruneResult(plan=plan, dry_run=dry_run, versioning=bucket_versioning(storage))
    if dry_run:
        return result
    log = get_logger()
    manifests, others = plan.doomed_objects()
    if manifests:
        storage.delete(manifests)
        result.deleted.extend(manifests)
    if others:
        storage.delete(others)
        result.deleted.extend(others)
    for decision in plan.doomed:
        event(log, "backup deleted", backup=decision.status.backup_id, reason=decision.reason,
              objects=len(decision.status.objects))
    return result


# --------------------------------------------------------------------------- verify
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
    verification: dict[str, Any] | None = None


@dataclass
class VerifyResult:
    uri: str
    backup_id: str
    objects: list[ObjectCheck]
    seconds: float
    deep: DeepResult | None = None

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.objects) and (self.deep is None or self.deep.ok)

    def problems(self) -> list[str]:
        found = [p for o in self.objects if (p := o.problem())]
        if self.deep is not None:
            found += self.deep.problems
        return found

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["problems"] = self.problems()
        return data


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


def verify_storage(config: StorageConfig, source: str) -> tuple[Storage, BackupKeys, Manifest]:
    """Resolve ``source`` (URI or ``latest``) and read its manifest."""
    storage = Storage(storage_for_source(config, source))
    keys = resolve_backup(storage, source)
    return storage, keys, load_manifest(storage, keys)


def verify_backup(
    config: StorageConfig,
    source: str,
    *,
    deep: bool = False,
    scratch_url: str | None = None,
    pg_bin_dirs: tuple[str, ...] = (),
    scratch_dir: str | None = None,
) -> VerifyResult:
    """Size and SHA-256 of the dump and roles objects against the manifest, streamed
    (no temporary file); with ``deep`` also a restore into a scratch database that is
    verified against the manifest and dropped."""
    started = time.monotonic()
    storage, keys, manifest = verify_storage(config, source)
    uri = storage.config.uri(keys.dump)
    event(get_logger(), "verifying backup", uri=uri, bytes=manifest.dump.size)
    checks = [_check_object(storage, keys.dump, manifest.dump.size, manifest.dump.sha256)]
    if manifest.roles is not None:
        checks.append(_check_object(storage, manifest.roles.key, manifest.roles.size, manifest.roles.sha256))
    result = VerifyResult(uri=uri, backup_id=keys.backup_id, objects=checks, seconds=0.0)
    if deep and all(c.ok for c in checks):
        result.deep = deep_verify(storage, keys, manifest, scratch_url=scratch_url, pg_bin_dirs=pg_bin_dirs,
                                  scratch_dir=scratch_dir)
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
) -> DeepResult:
    """Restore the backup into a fresh scratch database with the restore machinery,
    verify rows, tenants and the schema fingerprint, then drop the database (or the
    throwaway cluster)."""
    from .report import RestoreReport
    from .restore import RestoreConfig, default_operator, run_restore
    from .scratchdb import scratch_database

    started = time.monotonic()
    with scratch_database(scratch_url, manifest.source.server_major, pg_bin_dirs) as target:
        full = target.superuser
        config = RestoreConfig(
            source=storage.config.uri(keys.dump),
            target_url=target.conninfo,
            storage=storage.config,
            live_source_url=None,
            operator=default_operator(),
            create_missing_roles=True,
            no_owner=not full,
            no_privileges=not full,
            jobs=2,
            safety_backup=False,
            scratch_dir=scratch_dir,
            pg_bin_dirs=pg_bin_dirs,
        )
        report = RestoreReport(
            backup_uri=config.source,
            operator=config.operator or "unknown",
            approval=None,
            started_at=datetime.now(timezone.utc).isoformat(),
            options={"verify": "deep", "no_owner": config.no_owner, "no_privileges": config.no_privileges},
        )
        problems: list[str] = []
        try:
            run_restore(config, report)
        except VerifyError as exc:
            # a checksum mismatch during the download, or the restored database differs
            problems = (_verification_problems(report.verification) if report.verification else []) or [exc.message]
        verification = report.verification or {}
        return DeepResult(
            ok=not problems,
            target=target.display,
            database=target.database,
            server_version=report.target_server_version,
            fidelity="full" if full else "no-owner/no-privileges",
            throwaway=target.throwaway,
            seconds=round(time.monotonic() - started, 1),
            problems=problems,
            roles_created=list(report.roles_created),
            tables=len(verification.get("tables", [])),
            tenants=len(verification.get("tenant_totals_actual", {})),
            categories_skipped=list(verification.get("fingerprint_categories_skipped", [])),
            verification=report.verification,
        )


def _verification_problems(verification: dict[str, Any]) -> list[str]:
    """Problem lines from a serialized VerificationResult."""
    lines: list[str] = []
    for table in verification.get("tables", []):
        if table["expected"] != table["actual"]:
            lines.append(f"table {table['table']}: expected {table['expected']} rows, found {table['actual']}")
        for tenant, (expected, actual) in table.get("tenant_diff", {}).items():
            lines.append(f"table {table['table']} tenant {tenant}: expected {expected} rows, found {actual}")
    for category, diff in verification.get("fingerprint_diff", {}).items():
        for item in diff.get("missing", []):
            lines.append(f"schema {category}: missing after restore: {item}")
        for item in diff.get("unexpected", []):
            lines.append(f"schema {category}: not in the backup: {item}")
    lines.extend(verification.get("sequence_problems", []))
    expected = verification.get("tenant_totals_expected", {})
    actual = verification.get("tenant_totals_actual", {})
    if expected != actual and not lines:
        lines.append(f"tenant totals differ: expected {expected}, found {actual}")
    return lines


# --------------------------------------------------------------------------- formatting
def human_age(seconds: float) -> str:
    """``42s``, ``5m``, ``3h05m``, ``2d04h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if hours else f"{days}d"


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _days(days: float) -> str:
    shown = int(days) if float(days).is_integer() else days
    return f"{shown} day" + ("" if shown == 1 else "s")

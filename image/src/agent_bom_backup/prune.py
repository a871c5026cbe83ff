"""Retention: delete expired backups under one prefix, never the newest complete one.

Decided by the backup catalog (:mod:`catalog`, reading the manifests: ``s3:GetObject``
on ``*.manifest.json``), so it agrees with ``restore latest``: the newest complete backup
(what ``restore latest`` restores) is always kept, and an ``unreadable`` backup (a
manifest that cannot be read or does not match its objects: a permission, KMS or
corruption problem to look at) is never deleted. Run under its own identity: the backup
role may not delete anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .catalog import ARCHIVED, COMPLETE, INCOMPLETE, UNREADABLE, BackupStatus, list_backups
from .errors import ConfigError
from .log import event, get_logger
from .storage import Storage, storage_error
from .units import human_age

DAY = 86400
DEFAULT_INCOMPLETE_GRACE_S = DAY


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
    """Decide which backups under the configured prefix expire (:func:`decide`), from the
    backup catalog's reading of them."""
    validate_retention(keep_days, keep_last, incomplete_grace_seconds)
    return PrunePlan(
        location=f"s3://{storage.config.bucket}/{storage.config.prefix.strip('/')}/",
        keep_days=keep_days,
        keep_last=keep_last,
        incomplete_grace_seconds=incomplete_grace_seconds,
        decisions=decide(list_backups(storage, now=now), keep_days, keep_last, incomplete_grace_seconds),
    )


def validate_retention(keep_days: float, keep_last: int, incomplete_grace_seconds: float) -> None:
    if keep_days < 0:
        raise ConfigError("--keep-days must be 0 or more")
    if keep_last < 1:
        raise ConfigError("--keep-last must be at least 1: the newest complete backup is never deleted")
    if incomplete_grace_seconds < 0:
        raise ConfigError("--incomplete-grace must be 0 or more")


def decide(statuses: list[BackupStatus], keep_days: float, keep_last: int,
           incomplete_grace_seconds: float = DEFAULT_INCOMPLETE_GRACE_S) -> list[PruneDecision]:
    """One decision per backup of ``statuses`` (newest first, as the catalog lists them).

    Kept: the newest complete backup (what ``restore latest`` restores), the
    ``keep_last`` newest complete or archived backups, every committed backup younger than
    ``keep_days``, every ``unreadable`` backup whatever its age, and every incomplete
    backup younger than ``keep_days`` or than the grace period (it may still be running).
    Everything else is deleted: expired complete or archived backups and failed runs
    (dump without manifest, a claim only, manifest or roles without dump) older than the
    keep window.
    """
    window = keep_days * DAY
    newest_complete = next((s for s in statuses if s.state == COMPLETE), None)
    decisions = []
    committed_seen = 0
    for status in statuses:
        age = status.age_seconds
        if status.state == UNREADABLE:
            decisions.append(PruneDecision(status, False, f"unreadable, never deleted: {status.reason}"))
        elif status.state in (COMPLETE, ARCHIVED):
            committed_seen += 1
            if status is newest_complete:
                decisions.append(PruneDecision(status, False, "newest complete backup (never deleted)"))
            elif committed_seen == 1:
                decisions.append(PruneDecision(status, False, f"newest backup, {status.state} (never deleted)"))
            elif committed_seen <= keep_last:
                decisions.append(PruneDecision(status, False, f"one of the {keep_last} newest complete backups"))
            elif age < window:
                decisions.append(PruneDecision(status, False, f"younger than {_days(keep_days)}"))
            else:
                why = f"older than {_days(keep_days)} and not among the {keep_last} newest complete backups"
                decisions.append(PruneDecision(status, True, why))
        else:
            assert status.state == INCOMPLETE
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
    return decisions


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


def _days(days: float) -> str:
    shown = int(days) if float(days).is_integer() else days
    return f"{shown} day" + ("" if shown == 1 else "s")

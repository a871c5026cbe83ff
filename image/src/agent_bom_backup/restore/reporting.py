"""The restore report assembled in one place: from what planning found
(:class:`plan.Findings`) and what the executing phases did (:class:`journal.Done`). Neither
planning nor the phases write into the report; the fields it shares with the plan (backup,
target, restore role, pg_restore) are taken from what they were found in."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING

from ..catalog import BackupStatus
from ..manifest import Manifest, backup_time
from ..report import RestoreReport, recreate_advice
from .plan import Findings

if TYPE_CHECKING:
    from .journal import Done


def record_findings(report: RestoreReport, found: Findings) -> None:
    """What planning found, as far as it got (a refusal leaves the rest unset)."""
    if found.backup is not None:
        storage, keys, manifest = found.backup.storage, found.backup.keys, found.backup.manifest
        report.backup_uri = storage.config.uri(keys.dump)
        report.backup_id = keys.backup_id
        report.set_backup_time(manifest.data_loss_reference)
        report.excluded_tables = list(manifest.excluded_tables)
        report.must_recreate = recreate_advice(report.excluded_tables)
        report.backup_source = {
            "database": manifest.source.database,
            "server_version": manifest.source.server_version,
            "pg_dump_version": manifest.client.pg_dump_version,
            "is_standby": manifest.source.is_standby,
            "size": manifest.dump.size,
            "sha256": manifest.dump.sha256,
            "manifest_format": manifest.format_version,
            "encrypted_to": manifest.encryption.recipients if manifest.encryption else None,
        }
        _record_skipped(report, found.backup.skipped, manifest)
    if found.target is not None:
        report.target = found.target.conn_info.display()
        report.target_server_version = found.target.info.version
        report.restore_role = found.target.role.name
    if found.role_plan is not None:
        report.roles_skipped = list(found.role_plan.skipped)
    if found.client is not None:
        report.pg_restore_version = found.client.version
    report.plan = found.plan


def record_done(report: RestoreReport, done: Done) -> None:
    """What the executing phases did so far (each field of the report of the same name)."""
    for item in fields(done):
        setattr(report, item.name, getattr(done, item.name))


def _record_skipped(report: RestoreReport, skipped: list[BackupStatus], manifest: Manifest) -> None:
    if not skipped:
        return
    report.skipped_backups = [{"backup_id": s.backup_id, "uri": s.uri, "state": s.state, "reason": s.reason}
                              for s in skipped]
    newest = backup_time(skipped[0].backup_id)
    restored = datetime.fromisoformat(manifest.data_loss_reference)
    if newest is not None:
        wider = max(0.0, (newest - restored).total_seconds())
        report.data_loss_note = (f"--allow-older passed over {len(skipped)} newer backup(s) (newest "
                                 f"{skipped[0].backup_id}, {skipped[0].state}): the data-loss window is at least "
                                 f"{round(wider / 3600, 1)} h wider than with the newest backup")


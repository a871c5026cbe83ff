"""What the executing phases work with: the plan and everything it was made from, the
changes so far, and the durable report written before each change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .. import agecrypt
from ..errors import BackupError
from ..log import event, get_logger
from ..manifest import BackupKeys, Manifest
from ..pgclients import PgClient
from ..report import RestoreReport
from ..roles import RolePlan
from ..safety import go_back_command
from ..sessions import ConnectLock
from ..storage import Storage
from .config import RestoreConfig
from .plan import RestorePlan
from .target import TargetInfo


@dataclass
class RestoreContext:
    """What the executor works with: the plan and everything it was made from."""

    config: RestoreConfig
    storage: Storage
    keys: BackupKeys
    manifest: Manifest
    target: TargetInfo
    client: PgClient
    plan: RestorePlan
    role_plan: RolePlan | None
    report: RestoreReport
    scratch_parent: Path
    changes: list[str] = field(default_factory=list)  # cluster and target changes so far
    target_changed: bool = False
    safety_client: PgClient | None = None
    #: --report: rewritten atomically before each change and after each step
    report_path: Path | None = None
    connect_lock: ConnectLock | None = None
    #: database ACL lines (fingerprint form) held back while CONNECT is revoked: the recorded
    #: ACL is applied when the door opens after verification (_open_with_recorded_acl)
    deferred_acl: set[str] = field(default_factory=set)

    def step(self, name: str) -> None:
        self.report.failed_step = name
        self.checkpoint()

    def changed(self, what: str) -> None:
        self.target_changed = True
        self.changes.append(what)
        self.checkpoint()

    def checkpoint(self, in_progress: str | None = None) -> None:
        """Write the report as things stand: what changed so far, the change under way
        (``in_progress``), the safety backup and how to go back. A SIGKILL at any point
        leaves the last version whole (:func:`reportfile.write_atomic`)."""
        report = self.report
        report.target_changed = self.target_changed
        report.changes = list(self.changes)
        report.in_progress = in_progress
        report.recovery = _recovery(self) if self.target_changed or in_progress else None
        if self.report_path is None:
            return
        try:
            report.write(self.report_path)
        except OSError as exc:
            event(get_logger(), f"could not write the restore report to {self.report_path}: {exc.strerror}",
                  level=logging.WARNING)


@dataclass
class RestoreOutcome:
    report: RestoreReport
    error: BackupError | None = None


def _recovery(ctx: RestoreContext) -> str:
    """How to go back to what the target held before this restore."""
    database, display = ctx.target.info.database, ctx.target.conn_info.display()
    if ctx.report.safety_backup and ctx.report.safety_backup.startswith("s3://"):
        command = go_back_command(ctx.report.safety_backup, database, ctx.config.approval,
                                  ctx.config.identity_file, encrypted=ctx.manifest.encryption is not None)
        return (f"restore the safety backup: {command}"
                " (a restore like any other: it replaces what this one left, as the same role)")
    if ctx.report.safety_backup:
        client = ctx.safety_client or ctx.client
        if ctx.report.safety_backup.endswith(agecrypt.AGE_SUFFIX):  # encrypted like the backup it replaced
            return (f"restore the safety dump: age -d -i {ctx.config.identity_file} {ctx.report.safety_backup} | "
                    f"{client.bin_dir / 'pg_restore'} --clean --if-exists --no-password --dbname={display} "
                    "(password in PGPASSWORD)")
        return (f"restore the safety dump: {client.bin_dir / 'pg_restore'} --clean --if-exists --no-password "
                f"--dbname={display} {ctx.report.safety_backup} (password in PGPASSWORD)")
    if ctx.plan.target_objects == 0:
        return (f"the target was empty before: drop what was restored (restore again with --clean --confirm-target "
                f"{database}, or drop and recreate database {database})")
    return (f"the previous contents of {database} were not saved (--no-safety-backup): restore them from another "
            f"backup; retry this one with --clean --confirm-target {database}")

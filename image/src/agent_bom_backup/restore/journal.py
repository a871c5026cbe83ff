"""The restore's journal: the changes made so far and the durable report, rewritten before
each change and after each step, with how to go back. It holds what the report and the
advice need (:class:`GoBack`), not the restore's config: a phase records a change here
without handing the config on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .. import agecrypt
from ..log import event, get_logger
from ..pgclients import PgClient
from ..report import Done, RestoreReport  # noqa: F401 - Done: importable from here too
from ..safety import go_back_command
from .reporting import record_done


@dataclass
class GoBack:
    """What the advice on going back needs, known once the restore is planned."""

    database: str
    #: the target's connection string as shown (no password)
    display: str
    approval: str | None
    identity_file: str | None
    encrypted: bool
    target_was_empty: bool
    #: the pg_restore that restores a local safety dump: the safety dump's client once taken
    client: PgClient

    def advice(self, safety_backup: str | None) -> str:
        """How to go back to what the target held before this restore."""
        database, display = self.database, self.display
        if safety_backup and safety_backup.startswith("s3://"):
            command = go_back_command(safety_backup, database, self.approval, self.identity_file,
                                      encrypted=self.encrypted)
            return (f"restore the safety backup: {command}"
                    " (a restore like any other: it replaces what this one left, as the same role)")
        if safety_backup:
            pg_restore = self.client.bin_dir / "pg_restore"
            if safety_backup.endswith(agecrypt.AGE_SUFFIX):  # encrypted like the backup it replaced
                return (f"restore the safety dump: age -d -i {self.identity_file} {safety_backup} | "
                        f"{pg_restore} --clean --if-exists --no-password --dbname={display} "
                        "(password in PGPASSWORD)")
            return (f"restore the safety dump: {pg_restore} --clean --if-exists --no-password "
                    f"--dbname={display} {safety_backup} (password in PGPASSWORD)")
        if self.target_was_empty:
            return (f"the target was empty before: drop what was restored (restore again with --clean "
                    f"--confirm-target {database}, or drop and recreate database {database})")
        return (f"the previous contents of {database} were not saved (--no-safety-backup): restore them from "
                f"another backup; retry this one with --clean --confirm-target {database}")


@dataclass
class Journal:
    """The changes so far, what was done, and the report they are written into."""

    report: RestoreReport
    go_back: GoBack
    #: --report: rewritten atomically before each change and after each step
    report_path: Path | None = None
    changes: list[str] = field(default_factory=list)  # cluster and target changes so far
    target_changed: bool = False
    done: Done = field(default_factory=Done)

    def step(self, name: str) -> None:
        self.report.failed_step = name
        self.checkpoint()

    def changed(self, what: str) -> None:
        self.target_changed = True
        self.changes.append(what)
        self.checkpoint()

    def undone(self, change: str) -> None:
        """The change described as ``change`` was undone: no longer one to report."""
        self.changes[:] = [made for made in self.changes if not made.startswith(change)]
        self.checkpoint()

    def recovery(self) -> str:
        return self.go_back.advice(self.done.safety_backup)

    def checkpoint(self, in_progress: str | None = None) -> None:
        """Write the report as things stand: what changed so far, the change under way
        (``in_progress``), the safety backup and how to go back. A SIGKILL at any point
        leaves the last version whole (:func:`reportfile.write_atomic`)."""
        report = self.report
        record_done(report, self.done)
        report.target_changed = self.target_changed
        report.changes = list(self.changes)
        report.in_progress = in_progress
        report.recovery = self.recovery() if self.target_changed or in_progress else None
        if self.report_path is None:
            return
        try:
            report.write(self.report_path)
        except OSError as exc:
            event(get_logger(), f"could not write the restore report to {self.report_path}: {exc.strerror}",
                  level=logging.WARNING)

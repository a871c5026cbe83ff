"""The restore report: the runbook's incident-record fields, the plan, what changed, and
the verification. Typed while the restore runs; converted to JSON once, when written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .log import scrub
from .reportfile import write_atomic

if TYPE_CHECKING:
    from .restore.plan import RestorePlan
    from .verify import VerificationResult

#: the statuses a report ends in (one set for restore, verify --deep and the drill):
#: verified (exit 0): everything the backup recorded is back;
#: verified-with-exclusions (exit 0): as verified, but tables left out of the backup by
#: configuration (listed under "not in this backup, by configuration");
#: incomplete (exit 12): data verified, items the backup recorded listed as "not restored",
#: each with its statement; dry-run; refused (nothing changed); failed (before any change);
#: failed-after-changes (exit 11).
VERIFIED, VERIFIED_WITH_EXCLUSIONS, INCOMPLETE, DRY_RUN, REFUSED, FAILED, FAILED_AFTER_CHANGES = (
    "verified", "verified-with-exclusions", "incomplete", "dry-run", "refused", "failed", "failed-after-changes")


@dataclass
class Done:
    """What a restore's executing phases did and found, as they go (the journal holds
    it): the report is one of these too and takes it at each checkpoint and at the end
    (restore.reporting.record_done), never from the phases directly."""

    safety_backup: str | None = None
    #: other sessions on the target that --terminate-sessions ended
    sessions_ended: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    roles_attributes_dropped: dict[str, list[str]] = field(default_factory=dict)
    roles_needing_password: list[str] = field(default_factory=list)
    memberships_granted: list[str] = field(default_factory=list)
    memberships_recreated: list[str] = field(default_factory=list)
    #: every statement the restore ran on roles (create, settings, memberships), in order
    role_statements: list[str] = field(default_factory=list)
    tolerated_errors: list[str] = field(default_factory=list)
    #: statements that gave the target database its recorded state; privileges granted instead
    database_statements: list[str] = field(default_factory=list)
    privileges_granted: list[str] = field(default_factory=list)
    #: items the backup recorded that the restore role could not apply: item, statement, reason
    not_restored: list[dict[str, str]] = field(default_factory=list)
    verification: VerificationResult | None = None


@dataclass(kw_only=True)
class RestoreReport(Done):
    backup_uri: str
    operator: str
    approval: str | None
    started_at: str
    status: str = "running"  # verified | dry-run | refused | failed | failed-after-changes
    finished_at: str | None = None
    backup_id: str | None = None
    backup_snapshot_time: str | None = None
    backup_source: dict[str, Any] = field(default_factory=dict)
    data_loss_window_seconds: float | None = None
    #: backups newer than the one restored that --allow-older passed over, and why
    skipped_backups: list[dict[str, Any]] = field(default_factory=list)
    data_loss_note: str | None = None
    target: str | None = None
    target_server_version: str | None = None
    restore_role: str | None = None
    pg_restore_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    plan: RestorePlan | None = None
    #: the step a failure happened in: plan, prepare, change, restore or verify
    failed_step: str | None = None
    target_changed: bool = False
    changes: list[str] = field(default_factory=list)
    recovery: str | None = None
    #: while running: the change under way when the report was written (a kill leaves it
    #: here: it may or may not have happened; ``changes`` holds those that completed)
    in_progress: str | None = None
    #: relations left out of the backup by configuration (manifest ``excluded_tables``)
    excluded_tables: list[str] = field(default_factory=list)
    #: what the application must recreate because of them (:func:`recreate_advice`)
    must_recreate: list[str] = field(default_factory=list)
    #: what the roles object holds that is never run (predefined or privileged roles, roles the
    #: archive does not reach, tablespaces, security labels)
    roles_skipped: list[str] = field(default_factory=list)
    error: str | None = None
    exit_code: int | None = None

    def set_backup_time(self, snapshot_time: str) -> None:
        self.backup_snapshot_time = snapshot_time
        start = datetime.fromisoformat(self.started_at)
        snap = datetime.fromisoformat(snapshot_time)
        self.data_loss_window_seconds = round((start - snap).total_seconds(), 1)

    def finish(self, status: str, error: str | None = None, exit_code: int | None = None) -> None:
        self.status = status
        self.error = error
        self.exit_code = exit_code
        self.finished_at = datetime.now(timezone.utc).isoformat()

    def to_dict(self) -> dict[str, Any]:
        """The report's fields in reading order: the record, what changed, what the phases
        did (:class:`Done`'s fields), then the rest."""
        data: dict[str, Any] = {}
        done = [item.name for item in fields(Done)]
        own = [item.name for item in fields(self) if item.name not in done]
        at = own.index("in_progress") + 1
        for name in own[:at] + done + own[at:]:
            value = getattr(self, name)
            if name in ("plan", "verification"):
                data[name] = value.to_dict() if value is not None else None
            else:
                data[name] = value
        return json.loads(json.dumps(data, default=str))

    def to_json(self) -> str:
        return scrub(json.dumps(self.to_dict(), indent=2)) + "\n"

    def write(self, path: Path) -> None:
        """Atomically (fsync, rename, fsync the directory): a kill leaves a whole report."""
        write_atomic(path, self.to_json(), mode=0o644)

    def summary(self) -> str:
        """The human summary, ready to paste into the incident record."""
        lines = [
            "agent-bom restore report",
            "========================",
            f"status:            {self.status.upper()}",
            f"backup URI:        {self.backup_uri}",
            f"operator:          {self.operator}",
            f"approval:          {self.approval or '-'}",
            f"start time:        {self.started_at}",
            f"end time:          {self.finished_at or '-'}",
            f"backup snapshot:   {self.backup_snapshot_time or '-'}",
            f"data-loss window:  {_window(self.data_loss_window_seconds)} (backup snapshot to restore start)",
            f"target:            {self.target or '-'} (PostgreSQL {self.target_server_version or '?'})",
            f"restore role:      {self.restore_role or '-'}",
            f"pg_restore:        {self.pg_restore_version or '-'}",
        ]
        lines += self._change_lines()
        if self.plan is not None:
            lines.append("plan:")
            lines.extend(f"  - {step}" for step in self.plan.steps())
        lines.extend(exclusion_lines(self.excluded_tables))
        if self.verification is not None:
            lines.extend(_verification_lines(self.verification))
        if self.status not in ("running", VERIFIED, VERIFIED_WITH_EXCLUSIONS, INCOMPLETE, DRY_RUN):
            lines.append(f"failed in:         {self.failed_step or '-'}")
            if self.target_changed:
                lines.append(f"TARGET CHANGED:    {'; '.join(self.changes)}")
                lines.append(f"to go back:        {self.recovery}")
            else:
                lines.append("target state:      untouched (the target database is as it was)"
                             + (f"; cluster changes: {'; '.join(self.changes)}" if self.changes else ""))
        if self.error:
            lines.append(f"error:             {self.error}")
        return scrub("\n".join(lines) + "\n")

    def _change_lines(self) -> list[str]:
        """The summary's lines on what the restore did besides pg_restore: passed-over
        backups, the safety backup, roles, database state, what was not restored."""
        lines: list[str] = []
        if self.data_loss_note:
            lines.append(f"WIDER DATA LOSS:   {self.data_loss_note}")
        for skipped in self.skipped_backups:
            lines.append(f"skipped backup:    {skipped['backup_id']} ({skipped['state']}: {skipped['reason']})")
        if self.safety_backup:
            lines.append(f"safety backup:     {self.safety_backup}")
        if self.roles_created:
            lines.append(f"roles created:     {', '.join(self.roles_created)}")
        for role, dropped in self.roles_attributes_dropped.items():
            lines.append(f"role {role} created without: {', '.join(dropped)} (a platform admin grants them)")
        if self.memberships_granted:
            lines.append(f"memberships granted to the restore role: {', '.join(self.memberships_granted)}")
        if self.roles_needing_password:
            lines.append(f"SET A PASSWORD for login roles: {', '.join(self.roles_needing_password)}")
        for statement in self.role_statements:
            lines.append(f"role statement:    {statement}")
        for skipped in self.roles_skipped:
            lines.append(f"roles skipped:     {skipped}")
        for statement in self.database_statements:
            lines.append(f"database:          {statement}")
        for statement in self.privileges_granted:
            lines.append(f"granted instead:   {statement}")
        if self.not_restored:
            lines.append("NOT RESTORED (a platform admin runs each statement):")
            for item in self.not_restored:
                lines.append(f"  - {item['item']}: {item['statement']};  ({item['reason']})")
        for note in self.tolerated_errors:
            lines.append(f"tolerated:         {note}")
        return lines


#: what upstream agent-bom's application must do when a table it owns was left out
KNOWN_RECREATE = {
    "public.agent_bom_tenant_binding_keys": (
        "agent-bom >= 0.102: `alembic stamp 20260818_01 && alembic upgrade head` recreates the table (a plain "
        "`alembic upgrade head` does nothing: the version table is already at head), then re-provision the "
        "tenant-binding keys"),
}


def recreate_advice(excluded: list[str]) -> list[str]:
    """What the application must recreate after a restore without ``excluded``."""
    advice = sorted({KNOWN_RECREATE[t] for t in excluded if t in KNOWN_RECREATE})
    others = [t for t in excluded if t not in KNOWN_RECREATE]
    if others:
        advice.append(f"recreate {', '.join(others)} (definition and rows) the way the application creates them")
    return advice


def exclusion_lines(excluded: list[str]) -> list[str]:
    """The summary's section on tables the backup left out by configuration."""
    if not excluded:
        return []
    return (["not in this backup, by configuration (--exclude-table):"] + [f"  - {t}" for t in excluded]
            + [f"the application must recreate: {line}" for line in recreate_advice(excluded)])


def _verification_lines(verification: VerificationResult) -> list[str]:
    lines = ["verification:", f"  {'table':<40} {'expected':>10} {'restored':>10}"]
    for table in verification.tables:
        mark = "ok" if table.ok else "MISMATCH"
        lines.append(f"  {table.table:<40} {_n(table.expected):>10} {_n(table.actual):>10}  {mark}")
    lines.append(f"  {'tenant (rows in all tables)':<40} {'expected':>10} {'restored':>10}")
    actual = verification.tenant_totals_actual
    for tenant, rows in verification.tenant_totals_expected.items():
        got = actual.get(tenant)
        lines.append(f"  {tenant:<40} {rows:>10} {_n(got):>10}  {'ok' if got == rows else 'MISMATCH'}")
    diff = verification.fingerprint_diff
    skipped = verification.fingerprint_categories_skipped
    lines.append(
        "  schema fingerprint: "
        + ("matches" if not diff else f"DIFFERS in {', '.join(diff)}")
        + (f" (not compared: {', '.join(skipped)})" if skipped else "")
    )
    seq = verification.sequence_problems
    lines.append("  sequences: " + ("ok" if not seq else "; ".join(seq)) + f" ({verification.sequence_check})")
    lines.append(f"  row-level security: {verification.rls_counting}")
    return lines


def _n(value: object) -> str:
    return "-" if value is None else str(value)


def _window(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(abs(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


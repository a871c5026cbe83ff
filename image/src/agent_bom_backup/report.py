"""The restore report: the runbook's incident-record fields plus verification."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class RestoreReport:
    backup_uri: str
    operator: str
    approval: str | None
    started_at: str
    status: str = "running"  # verified | failed | refused | dry-run
    finished_at: str | None = None
    backup_id: str | None = None
    backup_snapshot_time: str | None = None
    backup_source: dict[str, Any] = field(default_factory=dict)
    data_loss_window_seconds: float | None = None
    target: str | None = None
    target_server_version: str | None = None
    pg_restore_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    safety_backup: str | None = None
    roles_created: list[str] = field(default_factory=list)
    roles_needing_password: list[str] = field(default_factory=list)
    tolerated_errors: list[str] = field(default_factory=list)
    verification: dict[str, Any] | None = None
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

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
            f"pg_restore:        {self.pg_restore_version or '-'}",
        ]
        if self.safety_backup:
            lines.append(f"safety backup:     {self.safety_backup}")
        if self.roles_created:
            lines.append(f"roles created:     {', '.join(self.roles_created)}")
        if self.roles_needing_password:
            lines.append(f"SET A PASSWORD for login roles: {', '.join(self.roles_needing_password)}")
        for note in self.tolerated_errors:
            lines.append(f"tolerated:         {note}")
        if self.plan:
            lines.append("plan:")
            lines.extend(f"  - {step}" for step in self.plan)
        verification = self.verification
        if verification:
            lines.append("verification:")
            lines.append(f"  {'table':<40} {'expected':>10} {'restored':>10}")
            for table in verification["tables"]:
                mark = "ok" if table["expected"] == table["actual"] and table["tenants_ok"] else "MISMATCH"
                lines.append(f"  {table['table']:<40} {_n(table['expected']):>10} {_n(table['actual']):>10}  {mark}")
            lines.append(f"  {'tenant (rows in all tables)':<40} {'expected':>10} {'restored':>10}")
            actual = verification["tenant_totals_actual"]
            for tenant, rows in verification["tenant_totals_expected"].items():
                got = actual.get(tenant)
                lines.append(f"  {tenant:<40} {rows:>10} {_n(got):>10}  {'ok' if got == rows else 'MISMATCH'}")
            diff = verification["fingerprint_diff"]
            skipped = verification["fingerprint_categories_skipped"]
            lines.append(
                "  schema fingerprint: "
                + ("matches" if not diff else f"DIFFERS in {', '.join(diff)}")
                + (f" (not compared: {', '.join(skipped)})" if skipped else "")
            )
            seq = verification["sequence_problems"]
            lines.append("  sequences: " + ("ok" if not seq else "; ".join(seq)))
        if self.error:
            lines.append(f"error:             {self.error}")
        return "\n".join(lines) + "\n"


def _n(value: object) -> str:
    return "-" if value is None else str(value)


def _window(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(abs(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"

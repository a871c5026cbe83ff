"""Compare a restored database with its manifest: rows, tenants, schema, sequences."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import psycopg

from . import catalog
from .manifest import Manifest


@dataclass
class TableResult:
    table: str
    expected: int | None
    actual: int | None
    tenants_ok: bool = True
    tenant_diff: dict[str, list[int | None]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.expected == self.actual and self.tenants_ok


@dataclass
class VerificationResult:
    tables: list[TableResult] = field(default_factory=list)
    tenant_totals_expected: dict[str, int] = field(default_factory=dict)
    tenant_totals_actual: dict[str, int] = field(default_factory=dict)
    fingerprint_diff: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    fingerprint_categories_skipped: list[str] = field(default_factory=list)
    sequence_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(t.ok for t in self.tables)
            and not self.fingerprint_diff
            and not self.sequence_problems
            and self.tenant_totals_expected == self.tenant_totals_actual
        )

    def problems(self) -> list[str]:
        lines: list[str] = []
        for t in self.tables:
            if t.expected != t.actual:
                lines.append(f"table {t.table}: expected {_n(t.expected)} rows, found {_n(t.actual)}")
            for tenant, (exp, act) in t.tenant_diff.items():
                lines.append(f"table {t.table} tenant {tenant}: expected {_n(exp)} rows, found {_n(act)}")
        for category, diff in self.fingerprint_diff.items():
            for item in diff.get("missing", []):
                lines.append(f"schema {category}: missing after restore: {item}")
            for item in diff.get("unexpected", []):
                lines.append(f"schema {category}: not in the backup: {item}")
        lines.extend(self.sequence_problems)
        return lines

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _n(value: int | None) -> str:
    return "no table" if value is None else str(value)


def verify_database(
    conn: psycopg.Connection, manifest: Manifest, *, owners: bool = True, privileges: bool = True
) -> VerificationResult:
    result = VerificationResult()
    actual_counts = {f"{c.schema}.{c.name}": c for c in catalog.row_counts(conn, manifest.tenant_column)}
    expected_counts = {f"{t.schema}.{t.name}": t for t in manifest.tables}
    for name in sorted(set(actual_counts) | set(expected_counts)):
        expected = expected_counts.get(name)
        actual = actual_counts.get(name)
        table = TableResult(
            table=name,
            expected=expected.rows if expected else None,
            actual=actual.rows if actual else None,
        )
        exp_tenants = (expected.tenants if expected else None) or {}
        act_tenants = (actual.tenants if actual else None) or {}
        for tenant in sorted(set(exp_tenants) | set(act_tenants)):
            if exp_tenants.get(tenant) != act_tenants.get(tenant):
                table.tenants_ok = False
                table.tenant_diff[tenant] = [exp_tenants.get(tenant), act_tenants.get(tenant)]
        result.tables.append(table)
    result.tenant_totals_expected = manifest.tenant_totals()
    totals: dict[str, int] = {}
    for count in actual_counts.values():
        for tenant, rows in (count.tenants or {}).items():
            totals[tenant] = totals.get(tenant, 0) + rows
    result.tenant_totals_actual = dict(sorted(totals.items()))

    skipped = []
    if not owners:
        skipped += list(catalog.OWNERSHIP_CATEGORIES)
    if not privileges:
        skipped += list(catalog.PRIVILEGE_CATEGORIES)
    result.fingerprint_categories_skipped = skipped
    actual_fp = catalog.schema_fingerprint(conn)
    for category, expected_items in manifest.schema_fingerprint.items():
        if category in skipped:
            continue
        actual_items = actual_fp.get(category, [])
        missing = sorted(set(expected_items) - set(actual_items))
        unexpected = sorted(set(actual_items) - set(expected_items))
        if missing or unexpected:
            result.fingerprint_diff[category] = {"missing": missing, "unexpected": unexpected}

    for check in catalog.sequence_checks(conn):
        if not check.ok:
            result.sequence_problems.append(
                f"sequence {check.sequence} is at {check.last_value}, below max({check.column}) = {check.column_max}"
            )
    return result

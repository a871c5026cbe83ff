"""A database compared with a backup's manifest (the leaf of verification).

* ``verify_database``: a restored database compared with the manifest: rows per table
  and tenant, the schema fingerprint, sequences.

The ``verify`` command (``verify_backup``, ``deep_verify``, their results) lives in
:mod:`verifybackup`, above the restore it runs; its names stay importable from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from . import dbstate, pgcatalog
from .manifest import Manifest
from .pgconn import LEGACY_INSPECTION_SETTINGS


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
    sequence_check: str = ""  # how sequences were compared (depends on the manifest's format)
    rls_counting: str = ""  # how rows behind row-level security were counted

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
        if self.tenant_totals_expected != self.tenant_totals_actual and not lines:
            lines.append(f"tenant totals differ: expected {self.tenant_totals_expected}, "
                         f"found {self.tenant_totals_actual}")
        return lines

    def to_dict(self) -> dict[str, object]:
        return with_verdict(self)


def with_verdict(result: Any) -> dict[str, Any]:
    """A verification result (a dataclass with ``ok`` and ``problems()``) as JSON: its
    fields, its verdict and its problems, derived once, here."""
    return {**asdict(result), "ok": result.ok, "problems": result.problems()}


def _n(value: int | None) -> str:
    return "no table" if value is None else str(value)


def inspection_settings(manifest: Manifest) -> tuple[tuple[str, str], ...]:
    """The settings the source was inspected with: recorded since format 2; format 1
    manifests were inspected with PostgreSQL's defaults."""
    if manifest.inspection_settings:
        return tuple(manifest.inspection_settings.items())
    return LEGACY_INSPECTION_SETTINGS


@dataclass(frozen=True)
class CompareOptions:
    """What :func:`verify_database` leaves out, and how it may count."""

    #: compare owners (False: --no-owner) and privileges (False: --no-privileges)
    owners: bool = True
    privileges: bool = True
    #: the connected role is a superuser or has BYPASSRLS
    sees_every_row: bool = True
    #: compare the database's own state (format 3); False for a scratch restore
    database_state: bool = True
    #: the target's administrator (the role the database state is captured as)
    restore_role: str | None = None
    #: fingerprint lines the report already lists (not restored, each with its statement)
    accounted: dict[str, set[str]] | None = None


def verify_database(conn: psycopg.Connection, manifest: Manifest, options: CompareOptions | None = None,
                    **keywords: Any) -> VerificationResult:
    """Compare the database ``conn`` is connected to (autocommit, in an inspection session:
    :func:`inspection_settings`) with ``manifest``. ``options`` (or its fields as keywords,
    as before :class:`CompareOptions`) say what is left out.

    Rows are counted with ``row_security = off``, so a role that row-level security
    would filter gets an error, never a low count. A role that neither is a superuser nor
    has BYPASSRLS counts as the tables' owner (or a member of it): owners bypass row-level
    security unless it is FORCEd, so inside one transaction that is rolled back it removes
    FORCE from the tables that have it, counts, and rolls back. The fingerprint is read
    afterwards, and shows FORCE back on.
    """
    options = options or CompareOptions(**keywords)
    result = VerificationResult()
    forced = pgcatalog.forced_rls_tables(conn)
    with conn.transaction(force_rollback=True):
        if forced and not options.sees_every_row:
            for schema, table in forced:
                conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(
                    sql.Identifier(schema, table)))
            result.rls_counting = (f"as the tables' owner: FORCE ROW LEVEL SECURITY lifted on {len(forced)} table(s) "
                                   "inside the counting transaction, then rolled back")
        else:
            result.rls_counting = "superuser or BYPASSRLS: every row visible" if options.sees_every_row \
                else "no table forces row-level security; owners see every row"
        actual_counts = {f"{c.schema}.{c.name}": c for c in pgcatalog.row_counts(conn, manifest.tenant_column)}
        result.sequence_problems, result.sequence_check = _sequence_problems(conn, manifest)
    _compare_counts(result, manifest, actual_counts)
    _compare_fingerprint(conn, manifest, result, options)
    return result


def _compare_fingerprint(conn: psycopg.Connection, manifest: Manifest, result: VerificationResult,
                         options: CompareOptions) -> None:
    """The schema fingerprint (and, format 3, the database's own state) against the
    manifest's, without the categories left out and the lines the report accounts for."""
    skipped = []
    if not options.owners:
        skipped += list(pgcatalog.OWNERSHIP_CATEGORIES)
    if not options.privileges:
        skipped += list(pgcatalog.PRIVILEGE_CATEGORIES)
    expected_fp = dict(manifest.schema_fingerprint)
    actual_fp = pgcatalog.schema_fingerprint(conn)
    if manifest.database is not None:
        if options.database_state:
            record = manifest.database
            actual_fp.update(dbstate.capture(conn, set(), administrator=options.restore_role,
                                             reached=set(record.reached_roles), name=record.name).fingerprint())
            omitted = tuple(k for k, off in (("owner ", not options.owners), ("acl ", not options.privileges),
                                             ("role setting ", not options.privileges)) if off)
            for fp in (expected_fp, actual_fp):
                fp[dbstate.DATABASE_CATEGORY] = [line for line in fp.get(dbstate.DATABASE_CATEGORY, [])
                                                 if not line.startswith(omitted or ("\0",))]
            if not options.privileges:
                skipped.append(dbstate.MEMBERSHIP_CATEGORY)
        else:
            skipped += list(dbstate.CATEGORIES)
    result.fingerprint_categories_skipped = skipped
    accounted = options.accounted or {}
    for category, expected_items in expected_fp.items():
        if category in skipped:
            continue
        actual_items = actual_fp.get(category, [])
        known = set(accounted.get(category, set()))
        if category == dbstate.DATABASE_CATEGORY and any(line.startswith("owner ") for line in known):
            known.update(line for line in actual_items if line.startswith("owner "))  # listed, with its statement
        missing = sorted(set(expected_items) - set(actual_items) - known)
        unexpected = sorted(set(actual_items) - set(expected_items) - known)
        if missing or unexpected:
            result.fingerprint_diff[category] = {"missing": missing, "unexpected": unexpected}


def _compare_counts(result: VerificationResult, manifest: Manifest,
                    actual_counts: dict[str, pgcatalog.TableCount]) -> None:
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


SEQUENCES_RECORDED = "at or past the source's recorded state, in each sequence's direction (manifest format 2)"
SEQUENCES_LEGACY = ("format 1 manifest (no recorded state): ascending sequences at or past max(column); "
                    "descending ones not checked")


def _sequence_problems(conn: psycopg.Connection, manifest: Manifest) -> tuple[list[str], str]:
    """Sequences are not snapshot-consistent, so equality with the source is the wrong
    test. The manifest records each sequence's state before pg_dump started, and pg_dump
    reads it later: a faithful restore is at that state or further along (a sequence that
    lags explicitly inserted ids lags after the restore too)."""
    restored = {(s.schema, s.name): s for s in pgcatalog.sequence_states(conn)}
    problems: list[str] = []
    if manifest.sequences is None:
        for state in restored.values():
            if state.owned_by is None or state.increment < 0:
                continue
            bound = pgcatalog.column_bound(conn, state.owned_by, state.increment)
            last = state.last_value if state.is_called else state.last_value - state.increment
            if bound.value is not None and last < bound.value:
                problems.append(f"sequence {state.schema}.{state.name} is at {last}, below max({state.owned_by}) "
                                f"= {bound.value}")
        return problems, SEQUENCES_LEGACY
    for recorded in manifest.sequences:
        state = restored.get((recorded.schema, recorded.name))
        name = f"{recorded.schema}.{recorded.name}"
        if state is None:
            problems.append(f"sequence {name} is missing after restore")
            continue
        behind = state.next_value < recorded.next_value if recorded.increment > 0 \
            else state.next_value > recorded.next_value
        if behind:
            problems.append(f"sequence {name} would next return {state.next_value}, behind the source's "
                            f"{recorded.next_value}")
    return problems, SEQUENCES_RECORDED


#: the ``verify`` command's names, moved up to :mod:`verifybackup`, importable from here
_MOVED_UP = frozenset({"ObjectCheck", "DeepResult", "VerifyResult", "verify_backup", "deep_verify",
                       "_hash_stream", "_check_object",
                       # what verify.py imported for them
                       "hashlib", "time", "Iterator", "Storage", "StorageConfig", "BackupKeys", "event",
                       "get_logger"})


def __getattr__(name: str) -> Any:
    """The names that moved up, imported late (importing them at module level would bring
    back the circle verify -> restore -> verify)."""
    if name in _MOVED_UP:
        from . import verifybackup
        return getattr(verifybackup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

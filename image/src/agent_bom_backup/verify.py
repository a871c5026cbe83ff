"""Verify a backup against its manifest.

* ``verify_backup`` (the ``verify`` command): the size and SHA-256 of the dump and
  roles objects, streamed; with ``deep``, a restore into a scratch database too.
* ``verify_database``: a restored database compared with the manifest: rows per table
  and tenant, the schema fingerprint, sequences.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from . import pgcatalog
from .log import event, get_logger
from .manifest import BackupKeys, Manifest
from .pgconn import LEGACY_INSPECTION_SETTINGS
from .storage import Storage, StorageConfig


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


def verify_database(
    conn: psycopg.Connection, manifest: Manifest, *, owners: bool = True, privileges: bool = True,
    sees_every_row: bool = True,
) -> VerificationResult:
    """Compare the database ``conn`` is connected to (autocommit, in an inspection session:
    :func:`inspection_settings`) with ``manifest``.

    Rows are counted with ``row_security = off``, so a role that row-level security
    would filter gets an error, never a low count. A role that neither is a superuser nor
    has BYPASSRLS counts as the tables' owner (or a member of it): owners bypass row-level
    security unless it is FORCEd, so inside one transaction that is rolled back it removes
    FORCE from the tables that have it, counts, and rolls back. The fingerprint is read
    afterwards, and shows FORCE back on.
    """
    result = VerificationResult()
    forced = pgcatalog.forced_rls_tables(conn)
    with conn.transaction(force_rollback=True):
        if forced and not sees_every_row:
            for schema, table in forced:
                conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(
                    sql.Identifier(schema, table)))
            result.rls_counting = (f"as the tables' owner: FORCE ROW LEVEL SECURITY lifted on {len(forced)} table(s) "
                                   "inside the counting transaction, then rolled back")
        else:
            result.rls_counting = "superuser or BYPASSRLS: every row visible" if sees_every_row \
                else "no table forces row-level security; owners see every row"
        actual_counts = {f"{c.schema}.{c.name}": c for c in pgcatalog.row_counts(conn, manifest.tenant_column)}
        result.sequence_problems, result.sequence_check = _sequence_problems(conn, manifest)
    _compare_counts(result, manifest, actual_counts)

    skipped = []
    if not owners:
        skipped += list(pgcatalog.OWNERSHIP_CATEGORIES)
    if not privileges:
        skipped += list(pgcatalog.PRIVILEGE_CATEGORIES)
    result.fingerprint_categories_skipped = skipped
    actual_fp = pgcatalog.schema_fingerprint(conn)
    for category, expected_items in manifest.schema_fingerprint.items():
        if category in skipped:
            continue
        actual_items = actual_fp.get(category, [])
        missing = sorted(set(expected_items) - set(actual_items))
        unexpected = sorted(set(actual_items) - set(expected_items))
        if missing or unexpected:
            result.fingerprint_diff[category] = {"missing": missing, "unexpected": unexpected}
    return result


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


# --------------------------------------------------------------------------- the verify command
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
    verification: VerificationResult | None = None


@dataclass
class VerifyResult:
    uri: str
    backup_id: str
    objects: list[ObjectCheck]
    seconds: float
    deep: DeepResult | None = None
    #: the age recipients of an encrypted backup (without --deep only the ciphertext is checked)
    encrypted_to: list[str] | None = None

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.objects) and (self.deep is None or self.deep.ok)

    def problems(self) -> list[str]:
        found = [p for o in self.objects if (p := o.problem())]
        if self.deep is not None:
            found += self.deep.problems
        return found

    def to_dict(self) -> dict[str, Any]:
        return with_verdict(self)


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


def verify_backup(
    config: StorageConfig,
    source: str,
    *,
    deep: bool = False,
    scratch_url: str | None = None,
    pg_bin_dirs: tuple[str, ...] = (),
    scratch_dir: str | None = None,
    identity_file: str | None = None,
) -> VerifyResult:
    """Size and SHA-256 of the dump and roles objects against the manifest, streamed
    (no temporary file); with ``deep`` also a restore into a scratch database that is
    verified against the manifest and dropped. ``latest`` is resolved by the backup
    catalog as ``restore latest`` resolves it."""
    from .catalog import NewestUnusableError, resolve
    from .errors import VerifyError
    from .restore import source_storage

    started = time.monotonic()
    storage = Storage(source_storage(config, source))
    try:
        resolved = resolve(storage, source)
    except NewestUnusableError as exc:
        raise VerifyError(exc.message, hint="verify an older backup by its URI (agent-bom-backup list)") from None
    keys, manifest = resolved.keys, resolved.manifest
    uri = storage.config.uri(keys.dump)
    event(get_logger(), "verifying backup", uri=uri, bytes=manifest.dump.size)
    checks = [_check_object(storage, keys.dump, manifest.dump.size, manifest.dump.sha256)]
    if manifest.roles is not None:
        checks.append(_check_object(storage, manifest.roles.key, manifest.roles.size, manifest.roles.sha256))
    result = VerifyResult(uri=uri, backup_id=keys.backup_id, objects=checks, seconds=0.0,
                          encrypted_to=list(manifest.encryption.recipients) if manifest.encryption else None)
    if deep and all(c.ok for c in checks):
        result.deep = deep_verify(storage, keys, manifest, scratch_url=scratch_url, pg_bin_dirs=pg_bin_dirs,
                                  scratch_dir=scratch_dir, identity_file=identity_file)
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
    identity_file: str | None = None,
) -> DeepResult:
    """Restore the backup into a fresh scratch database with the restore machinery,
    verify rows, tenants and the schema fingerprint, then drop the database (or the
    throwaway cluster).

    A restore that fails after it started changing the scratch database (pg_restore
    errors, a verification mismatch) is this backup's failure: its cause becomes a
    problem line (``verify`` exits 7). Refusals and preflight failures keep their codes."""
    from .agecrypt import require_identity
    from .errors import ChangedError
    from .restore import RestoreConfig, run_restore
    from .scratchdb import scratch_database

    started = time.monotonic()
    # an encrypted backup's identity is proven before a scratch database is made
    require_identity(storage.get_bytes, manifest, identity_file)
    with scratch_database(scratch_url, manifest.source.server_major, pg_bin_dirs) as target:
        full = target.superuser
        config = RestoreConfig(
            source=storage.config.uri(keys.dump),
            target_url=target.conninfo,
            storage=storage.config,
            live_source_url=None,
            create_missing_roles=True,
            no_owner=not full,
            no_privileges=not full,
            jobs=2,
            safety_backup=False,
            scratch_dir=scratch_dir,
            pg_bin_dirs=pg_bin_dirs,
            purpose="verify --deep",
            identity_file=identity_file,
        )
        outcome = run_restore(config)
        report = outcome.report
        problems: list[str] = []
        error = outcome.error
        if isinstance(error, ChangedError):
            verification = report.verification
            problems = (verification.problems() if verification is not None else []) or [error.cause.message]
        elif error is not None:
            raise error
        verification = report.verification
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
            tables=len(verification.tables) if verification else 0,
            tenants=len(verification.tenant_totals_actual) if verification else 0,
            categories_skipped=list(verification.fingerprint_categories_skipped) if verification else [],
            verification=verification,
        )

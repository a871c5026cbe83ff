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
from datetime import datetime, timezone
from typing import Any

import psycopg

from . import pgcatalog
from .errors import VerifyError
from .log import event, get_logger
from .manifest import BackupKeys, Manifest
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
    actual_counts = {f"{c.schema}.{c.name}": c for c in pgcatalog.row_counts(conn, manifest.tenant_column)}
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

    for check in pgcatalog.sequence_checks(conn):
        if not check.ok:
            result.sequence_problems.append(
                f"sequence {check.sequence} is at {check.last_value}, below max({check.column}) = {check.column_max}"
            )
    return result


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
    from .restore import load_manifest, resolve_backup, storage_for_source

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



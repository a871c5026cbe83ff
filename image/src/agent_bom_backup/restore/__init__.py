"""Restore a backup into a PostgreSQL database an on-call operator can trust.

Nothing destructive happens before everything that can fail cheaply has been done:

1. **plan** (read-only): resolve the backup through the backup catalog, read its manifest,
   check the dump object (archived? the size the manifest says?), inspect the target
   (server, identity, emptiness, the restore role and what it may do), refuse what is
   unsafe (the live source without an approval, a non-empty target without ``--clean``
   and its confirmed name), check roles, owners, extensions and privileges, pick the
   client, check the scratch space. The result is a typed :class:`RestorePlan`:
   ``--dry-run`` prints it, the report records it.
2. **prepare** (the target database is not touched): download the dump and verify its
   SHA-256, read its table of contents with the chosen pg_restore, then create the
   missing roles and grant the restore role the memberships it needs, in one transaction:
   the only change before the wipe, additive, listed in the report.
3. **change**: ``--clean``'s safety dump of the target, then the wipe. From here on a
   failure is a failure *after changes* (exit 11): the message says what changed and how
   to go back.
4. **restore**: pg_restore. A restore role that is not a superuser restores in three
   passes (schemas and their privileges; objects and data; row-level security switched
   on), so owners can be set and foreign keys validated without BYPASSRLS.
5. **verify**: rows per table and tenant, the schema fingerprint, sequences.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ..errors import BackupError, ChangedError, ConfigError, ExitCode, IncompleteError
from ..log import event, get_logger, redact_url
from ..report import (DRY_RUN, FAILED, FAILED_AFTER_CHANGES, INCOMPLETE, REFUSED, VERIFIED, VERIFIED_WITH_EXCLUSIONS,
                      RestoreReport)
# the phases; every name restore.py had stays importable from agent_bom_backup.restore
from .config import (  # noqa: F401
    default_operator, DOWNLOAD_PROGRESS_INTERVAL_S, RESTORE_PROGRESS_INTERVAL_S, RestoreConfig,
    _scratch, SCRATCH_HEADROOM, source_storage, TRANSACTION_TIMEOUT_ERROR, TRANSACTION_TIMEOUT_QUERY_ERROR,
    TRANSACTION_TIMEOUT_STATEMENT,
)
from .target import (  # noqa: F401
    _identity, _inspect_target, _refuse_unsafe_target, TargetInfo,
)
from .plan import (  # noqa: F401
    _check_dump_object, _database_state_step, Findings, _needed_roles, plan_restore, RestorePlan, _rls_counting,
    _role_kind, _roles_file, _safety_dir, _safety_location, scratch_free_bytes, _scratch_parent, _stored_roles,
)
from .privileges import (  # noqa: F401
    _check_extensions, _check_privileges, _owner_access, _owners_without_create, _schema_of,
)
from .context import RestoreContext, RestoreOutcome  # noqa: F401
from .journal import Done, GoBack, Journal  # noqa: F401
from .prepare import (  # noqa: F401
    _apply_roles, _check_archive, _download_verified, _dry_run_archive, _fetch, Prepared, prepare_restore,
    _read_toc, _TOC_LINE,
)
from .change import (  # noqa: F401
    change_target, _close_the_door, _counts, _open_the_door, _safety_backup, _safety_backup_in_bucket,
    _safety_backup_under_row_security, _wipe,
)
from .database import (  # noqa: F401
    _administrator_owner, _database_owner, _database_state, _open_with_recorded_acl, _record_applied, _target_state,
)
from .run import (  # noqa: F401
    _ERROR_MESSAGE, ERROR_PREFIX, _ERRORS_IGNORED, INTERLEAVED, judge_pg_restore, _pg_restore, PgRestoreOutcome,
    _PROGRESS_LINE, restore_passes, _run_with_progress,
)
from .verify import (  # noqa: F401
    _accounted, _verify,
)
from .reporting import (  # noqa: F401
    record_done, record_findings, _record_skipped,
)


def new_report(config: RestoreConfig) -> RestoreReport:
    return RestoreReport(
        backup_uri=redact_url(config.source),
        operator=config.operator or default_operator(),
        approval=config.approval,
        started_at=datetime.now(timezone.utc).isoformat(),
        options={
            "purpose": config.purpose, "clean": config.clean, "no_owner": config.no_owner,
            "no_privileges": config.no_privileges, "create_missing_roles": config.create_missing_roles,
            "jobs": config.jobs, "dry_run": config.dry_run, "allow_older": config.allow_older,
            "safety_backup": config.safety_backup,
        },
    )


def run_restore(config: RestoreConfig) -> RestoreOutcome:
    """The restore (and ``verify --deep``'s): plan, then execute unless a dry run. The
    report is finished with the outcome's status and, with ``report_path``, written at
    the start (an unwritable path fails before anything) and at the end."""
    log = get_logger()
    report = new_report(config)
    report.failed_step = "plan"
    path = Path(config.report_path) if config.report_path else None
    outcome = RestoreOutcome(report)
    ctx: RestoreContext | None = None
    journal: Journal | None = None
    try:
        if path is not None:
            _write_first_report(report, path)
        ctx = _planned(config, report)
        journal = new_journal(ctx, report, path)
        if config.dry_run:
            _dry_run_archive(ctx)
            for step in ctx.plan.steps():
                event(log, "plan", step=step)
            report.failed_step = None
            report.finish(DRY_RUN, exit_code=0)
        else:
            execute(ctx, journal)
            record_done(report, journal.done)
            report.failed_step = None
            _finish_verified(report, outcome)
    except ChangedError as exc:
        outcome.error = exc
        report.target_changed, report.changes, report.recovery = True, exc.changes, exc.recovery
        report.finish(FAILED_AFTER_CHANGES, error=str(exc), exit_code=int(exc.exit_code))
    except BackupError as exc:
        outcome.error = exc
        report.changes = list(journal.changes) if journal else []
        refused = exc.exit_code in (ExitCode.REFUSED, ExitCode.PREFLIGHT, ExitCode.CONFIG)
        report.finish(REFUSED if refused else FAILED, error=str(exc), exit_code=int(exc.exit_code))
    except BaseException as exc:
        report.changes = list(journal.changes) if journal else []
        report.finish(FAILED, error=f"unexpected error: {type(exc).__name__}: {exc}", exit_code=int(ExitCode.INTERNAL))
        raise
    finally:
        if journal is not None:
            record_done(report, journal.done)
        _write_last_report(report, path)
    return outcome


def _planned(config: RestoreConfig, report: RestoreReport) -> RestoreContext:
    """Plan; the report records what planning found, whether it planned or refused."""
    found = Findings()
    try:
        plan = plan_restore(config, found)
    finally:
        record_findings(report, found)
    assert found.backup is not None and found.target is not None and found.client is not None
    assert found.scratch_parent is not None
    return RestoreContext(config, found.backup.storage, found.backup.keys, found.backup.manifest, found.target,
                          found.client, plan, found.role_plan, found.scratch_parent)


def _finish_verified(report: RestoreReport, outcome: RestoreOutcome) -> None:
    """Verified, verified with exclusions, or incomplete (items listed as not restored)."""
    if report.not_restored:
        items = "; ".join(str(item["item"]) for item in report.not_restored)
        outcome.error = IncompleteError(
            f"restore incomplete: the data is verified, but {len(report.not_restored)} item(s) the backup "
            f"recorded were not restored: {items}",
            hint="a platform admin runs the statements listed under NOT RESTORED in the report")
        report.finish(INCOMPLETE, error=str(outcome.error), exit_code=int(ExitCode.INCOMPLETE))
    else:
        report.finish(VERIFIED_WITH_EXCLUSIONS if report.excluded_tables else VERIFIED, exit_code=0)
    verification = report.verification
    event(get_logger(), "restore verified", uri=report.backup_uri,
          tables=len(verification.tables) if verification else 0,
          tenants=len(verification.tenant_totals_actual) if verification else 0)


def _write_last_report(report: RestoreReport, path: Path | None) -> None:
    if report.status != "running":
        report.in_progress = None
    if path is not None and report.status != "running":
        try:
            report.write(path)
        except OSError as exc:
            event(get_logger(), f"could not write the restore report to {path}: {exc.strerror}; the summary on "
                  "stdout holds the same", level=logging.WARNING)


def _write_first_report(report: RestoreReport, path: Path) -> None:
    try:
        report.write(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the restore report to {path}: {exc.strerror}",
            hint="pass a --report path in a writable directory (nothing was restored)",
        ) from None


def execute(ctx: RestoreContext, journal: Journal) -> None:
    """prepare -> change -> restore -> verify, each change written to ``journal``. A failure
    once the target database was changed becomes a :class:`ChangedError` naming what
    changed and how to go back."""
    with tempfile.TemporaryDirectory(prefix="agent-bom-restore-", dir=ctx.scratch_parent) as scratch:
        prepared = prepare_restore(ctx, journal, Path(scratch))
        try:
            try:
                change_target(ctx, journal)
                _restore(ctx, journal, prepared, Path(scratch))
                journal.step("verify")
                _verify(ctx, journal)
                _open_with_recorded_acl(ctx, journal)
            finally:  # verified or not, the CONNECT revoked is granted back (a no-op once opened)
                _open_the_door(ctx, journal)
        except Exception as exc:  # noqa: BLE001 - the target was changed: say so, whatever the error
            error = _after_changes(journal, exc)
            if error is exc:
                raise
            raise error from None


def new_journal(ctx: RestoreContext, report: RestoreReport, report_path: Path | None = None) -> Journal:
    """The journal of a planned restore: its report, and what going back needs."""
    config = ctx.config
    return Journal(report, GoBack(
        database=ctx.target.info.database, display=ctx.target.conn_info.display(), approval=config.approval,
        identity_file=config.identity_file, encrypted=ctx.manifest.encryption is not None,
        target_was_empty=ctx.plan.target_objects == 0, client=ctx.client), report_path)


def _restore(ctx: RestoreContext, journal: Journal, prepared: Prepared, scratch: Path) -> None:
    """The run phase: the database's recorded owner, pg_restore, the database's recorded state."""
    journal.step("restore")
    _database_owner(ctx, journal)
    journal.changed("pg_restore started: the backup is (partially) restored")
    journal.done.tolerated_errors = _pg_restore(ctx, prepared.dump_path, prepared.toc, scratch)
    journal.changes[-1] = "restored the backup with pg_restore"
    _database_state(ctx, journal)


def _after_changes(journal: Journal, exc: Exception) -> Exception:
    """The error to raise: once the target was changed, a :class:`ChangedError` naming what
    changed and how to go back (for any error); before, the error itself."""
    if not journal.target_changed:
        return exc
    if not isinstance(exc, BackupError):
        get_logger().debug("unexpected error after changes", exc_info=True)
        exc = BackupError(f"unexpected error: {type(exc).__name__}: {exc}")
    return ChangedError(exc, changes=journal.changes, recovery=journal.recovery())


def __getattr__(name: str) -> object:
    """The other names restore.py's namespace held (what it imported), from the phase
    that imports them now: ``from agent_bom_backup.restore import Storage`` still works."""
    from .. import storage
    from . import (change, config, context, database, journal, plan, prepare, privileges, reporting, run, target,
                   verify)
    for module in (config, target, plan, privileges, context, journal, prepare, change, database, run, verify,
                   reporting, storage):
        if name in vars(module) and not name.startswith("__"):
            return vars(module)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

import getpass
import hashlib
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg

from . import agecrypt, pgcatalog
from .catalog import ARCHIVED_CLASSES, BackupStatus, resolve
from .dump import DumpOptions, dump_to_file
from .errors import (
    BackupError,
    ChangedError,
    ConfigError,
    DumpError,
    ExitCode,
    IncompleteError,
    PreflightError,
    RefusedError,
    RestoreError,
    StorageError,
    VerifyError,
)
from .log import Progress, event, get_logger, redact_url
from .manifest import BackupKeys, Manifest, backup_time
from .pgclients import Compression, PgClient, discover, select_dump_client, select_restore_client
from .pgconn import ConnInfo, SessionSettings, probe_server_major
from .report import (DRY_RUN, FAILED, FAILED_AFTER_CHANGES, INCOMPLETE, REFUSED, VERIFIED, VERIFIED_WITH_EXCLUSIONS,
                     RestoreReport, recreate_advice)
from . import dbstate
from .archivecheck import check_target, parse_definitions, read_definitions
from .safety import backup_to_bucket, go_back_command, safety_storage
from .sessions import ConnectLock, Session, check_sessions, close_the_door, settled_sessions
from .roles import Grantor, RolePlan, StoredRole, apply_roles, parse_globals, plan_roles
from .rolesfile import RolesFile, reached_roles
from .resources import cpu_count
from .storage import DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD, Storage, StorageConfig, parse_s3_uri
from .verify import VerificationResult, inspection_settings, verify_database

TRANSACTION_TIMEOUT_ERROR = 'unrecognized configuration parameter "transaction_timeout"'
TRANSACTION_TIMEOUT_QUERY_ERROR = f"could not execute query: ERROR:  {TRANSACTION_TIMEOUT_ERROR}"
TRANSACTION_TIMEOUT_STATEMENT = "Command was: SET transaction_timeout = 0;"
SCRATCH_HEADROOM = 16 * 1024 * 1024
#: seconds between "downloading" and "restoring" progress lines
DOWNLOAD_PROGRESS_INTERVAL_S = 5
RESTORE_PROGRESS_INTERVAL_S = 10


@dataclass(frozen=True)
class RestoreConfig:
    source: str
    target_url: str = field(repr=False)
    storage: StorageConfig
    live_source_url: str | None = field(default=None, repr=False)
    clean: bool = False
    confirm_target: str | None = None
    approval: str | None = None
    operator: str | None = None
    create_missing_roles: bool = False
    no_owner: bool = False
    no_privileges: bool = False
    #: parallel pg_restore jobs; None: the CPUs this process may use (resources.cpu_count)
    jobs: int | None = None
    #: objects at least this large download in parallel ranges; None: one stream
    parallel_download_threshold: int | None = DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD
    dry_run: bool = False
    safety_backup: bool = True
    safety_backup_dir: str | None = None
    scratch_dir: str | None = None
    pg_bin_dirs: tuple[str, ...] = ()
    pg_bin_dirs_only: bool = False
    lock_wait_timeout_s: int = 300
    allow_older: bool = False
    #: end other sessions on the target (REVOKE CONNECT, pg_terminate_backend) instead of refusing
    terminate_sessions: bool = False
    #: the safety backup goes to the bucket under <prefix>/safety/ (safety.py), not a local file
    safety_backup_to_bucket: bool = False
    report_path: str | None = None
    purpose: str = "restore"  # or "verify --deep"
    #: age identity file for a backup encrypted to age recipients (agecrypt)
    identity_file: str | None = None


def source_storage(config: StorageConfig, source: str) -> StorageConfig:
    """The storage a source names: the runbook passes only a URI and a region, so an
    ``s3://`` URI brings its own bucket; ``latest`` needs the configured one."""
    if source == "latest":
        if not config.bucket:
            raise ConfigError("'latest' needs a bucket", hint="set --bucket / AGENT_BOM_BACKUP_BUCKET, or pass an s3:// URI")
        return config
    bucket, _ = parse_s3_uri(source)
    return replace(config, bucket=bucket)


# --------------------------------------------------------------------------- the plan
@dataclass
class RestorePlan:
    """Everything the restore will do, decided before it changes anything."""

    backup_id: str
    backup_uri: str
    manifest_format: int
    dump_key: str
    dump_size: int
    dump_sha256: str
    target: str
    target_database: str
    target_server_version: str
    target_objects: int
    restore_role: str
    restore_role_kind: str
    wipe: bool
    safety_backup_dir: str | None
    pg_restore_version: str
    jobs: int
    no_owner: bool
    no_privileges: bool
    phased: bool
    tolerate_transaction_timeout: bool
    roles_to_create: list[str]
    role_attributes_dropped: dict[str, list[str]]
    memberships_to_grant: list[str]
    owners: dict[str, str]  # owner role -> how the restore role acts as it
    rls_counting: str
    sequence_check: str
    tables: int
    tenants: int
    scratch_dir: str
    scratch_free_bytes: int
    skipped_backups: list[str] = field(default_factory=list)
    #: age recipients of a client-encrypted backup (the identity was proven in the plan)
    encrypted_to: list[str] = field(default_factory=list)
    #: format 3: the recorded owner the target database is given before pg_restore
    database_owner: str | None = None
    #: owners of objects in public given CREATE on it (the database's owner could not be set)
    public_grants: list[str] = field(default_factory=list)
    database_state: str = ""
    #: other sessions on the target when planned, and whether CONNECT is revoked for the change
    sessions: list[str] = field(default_factory=list)
    close_door: bool = False
    #: what the archive needs from the target (archivecheck.py), known once it was read
    archive_steps: list[str] = field(default_factory=list)
    no_tablespaces: bool = False

    def steps(self) -> list[str]:
        steps = [f"download {self.dump_key} ({self.dump_size} bytes) and verify SHA-256 {self.dump_sha256[:16]}...",
                 f"read the archive's table of contents with pg_restore {self.pg_restore_version} --list"]
        if self.encrypted_to:
            steps.insert(1, "decrypt it with the age identity (it opened the roles object; recipients "
                         f"{', '.join(self.encrypted_to)}) into the scratch directory and verify the plaintext SHA-256")
        steps += self.archive_steps
        if self.roles_to_create:
            steps.append(f"create missing roles from the stored roles object: {', '.join(self.roles_to_create)}")
        for role, dropped in self.role_attributes_dropped.items():
            steps.append(f"create role {role} without {', '.join(dropped)} (the restore role may not grant them)")
        if self.memberships_to_grant:
            steps.append(f"grant {self.restore_role} membership in {', '.join(self.memberships_to_grant)} "
                         "(to set the owners of restored objects)")
        if self.close_door:
            steps.append(f"revoke CONNECT on {self.target_database} from every role but {self.restore_role}"
                         + (f", end {len(self.sessions)} other session(s): {'; '.join(self.sessions)}"
                            if self.sessions else "") + " (granted back when the restore ends)")
        if self.wipe:
            if self.safety_backup_dir:
                steps.append(f"take a safety pg_dump of {self.target_database} into {self.safety_backup_dir}")
            steps.append(f"drop every user schema in {self.target_database} ({self.target_objects} objects, "
                         "with large objects, event triggers and publications)")
        if self.database_owner:
            steps.append(f"make {self.database_owner} the owner of database {self.target_database} (as on the source)")
        if self.public_grants:
            steps.append(f"grant CREATE on schema public to {', '.join(self.public_grants)} (owners of objects in it; "
                         "the database's recorded owner cannot be set)")
        flags = " ".join(f for f, on in (("--no-owner", self.no_owner), ("--no-privileges", self.no_privileges)) if on)
        passes = (" in three passes (schemas and their privileges; objects and data; row-level security on)"
                  if self.phased else "")
        steps.append(f"pg_restore {self.pg_restore_version} --jobs={self.jobs} {flags}".rstrip() + passes)
        if self.tolerate_transaction_timeout:
            steps.append(f"tolerate only '{TRANSACTION_TIMEOUT_ERROR}' from its SET transaction_timeout = 0 "
                         "(a newer pg_restore into an older server)")
        if self.database_state:
            steps.append(self.database_state)
        steps.append(f"verify {self.tables} tables, {self.tenants} tenants and the schema fingerprint "
                     f"(row-level security: {self.rls_counting}; sequences: {self.sequence_check})")
        return steps

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = self.steps()
        return data


@dataclass
class TargetInfo:
    conn_info: ConnInfo
    major: int
    session: SessionSettings
    info: pgcatalog.ServerInfo
    objects: list[str]
    role: pgcatalog.RestoreRole
    roles: set[str]
    access: dict[str, pgcatalog.RoleAccess]
    extensions: dict[str, pgcatalog.ExtensionInfo]
    undroppable: list[str]
    create_on_public: bool
    sessions: list[Session] = field(default_factory=list)


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


# --------------------------------------------------------------------------- the operation
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
    try:
        if path is not None:
            _write_first_report(report, path)
        ctx = plan_restore(config, report)
        ctx.report_path = path
        if config.dry_run:
            _dry_run_archive(ctx)
            for step in ctx.plan.steps():
                event(log, "plan", step=step)
            report.failed_step = None
            report.finish(DRY_RUN, exit_code=0)
        else:
            execute(ctx)
            report.failed_step = None
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
            event(log, "restore verified", uri=report.backup_uri,
                  tables=len(verification.tables) if verification else 0,
                  tenants=len(verification.tenant_totals_actual) if verification else 0)
    except ChangedError as exc:
        outcome.error = exc
        report.target_changed, report.changes, report.recovery = True, exc.changes, exc.recovery
        report.finish(FAILED_AFTER_CHANGES, error=str(exc), exit_code=int(exc.exit_code))
    except BackupError as exc:
        outcome.error = exc
        report.changes = list(ctx.changes) if ctx else []
        refused = exc.exit_code in (ExitCode.REFUSED, ExitCode.PREFLIGHT, ExitCode.CONFIG)
        report.finish(REFUSED if refused else FAILED, error=str(exc), exit_code=int(exc.exit_code))
    except BaseException as exc:
        report.changes = list(ctx.changes) if ctx else []
        report.finish(FAILED, error=f"unexpected error: {type(exc).__name__}: {exc}", exit_code=int(ExitCode.INTERNAL))
        raise
    finally:
        if report.status != "running":
            report.in_progress = None
        if path is not None and report.status != "running":
            try:
                report.write(path)
            except OSError as exc:
                event(log, f"could not write the restore report to {path}: {exc.strerror}; the summary on "
                      "stdout holds the same", level=logging.WARNING)
    return outcome


def _write_first_report(report: RestoreReport, path: Path) -> None:
    try:
        report.write(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the restore report to {path}: {exc.strerror}",
            hint="pass a --report path in a writable directory (nothing was restored)",
        ) from None


def plan_restore(config: RestoreConfig, report: RestoreReport) -> RestoreContext:
    """Every check that needs no change, in order of cost; the typed plan. Raises the
    refusal or failure of the first check that fails."""
    conn_info = ConnInfo.parse(config.target_url, what="restore target URL")
    scratch_parent = _scratch_parent(config)
    storage = Storage(source_storage(config.storage, config.source))
    resolved = resolve(storage, config.source, allow_older=config.allow_older)
    keys, manifest = resolved.keys, resolved.manifest
    report.backup_uri = storage.config.uri(keys.dump)
    report.backup_id = keys.backup_id
    event(get_logger(), "restoring backup", uri=report.backup_uri, operator=report.operator)
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
    _record_skipped(report, resolved.skipped, manifest)
    _check_dump_object(storage, keys, manifest)
    agecrypt.require_identity(storage.get_bytes, manifest, config.identity_file)

    scratch = _scratch(config)
    record = manifest.database if not scratch else None
    owners = [] if config.no_owner else list(manifest.referenced_roles.get("owners", []))
    database_owner = record.owner if record is not None and not config.no_owner and \
        record.owner != dbstate.ADMINISTRATOR else None
    if database_owner is not None and database_owner not in owners:
        owners.append(database_owner)
    target = _inspect_target(config, conn_info, owners)
    report.target = conn_info.display()
    report.target_server_version = target.info.version
    report.restore_role = target.role.name
    _refuse_unsafe_target(config, manifest, target)
    check_sessions(target.sessions, database=target.info.database, restore_role=target.role.name,
                   terminate=config.terminate_sessions)
    wipe = config.clean and bool(target.objects)
    close_door = wipe or config.terminate_sessions
    if close_door and not (target.role.superuser or target.role.database_owner):
        raise RefusedError(
            f"restore role {target.role.name} may not revoke CONNECT on database {target.info.database} "
            f"(owned by {target.role.database_owner_name}): other sessions could write while it is replaced",
            hint="restore as the database's owner (or a member of it) or a superuser",
        )
    if wipe and target.undroppable:
        raise RefusedError(
            f"--clean must drop what restore role {target.role.name} may not: {', '.join(target.undroppable[:5])}"
            + (" ..." if len(target.undroppable) > 5 else ""),
            hint="restore into a new database, or have its owner (or a superuser) drop these first",
        )

    roles_file = _roles_file(storage, manifest, config.identity_file)
    needed = _needed_roles(manifest, roles_file, config, scratch)
    missing = sorted(needed - target.roles)
    stored = _stored_roles(manifest, target, missing, config, roles_file)
    grantor = Grantor(target.role.name, target.major, target.role.superuser, target.role.createrole,
                      target.role.createdb, target.role.bypassrls, target.role.replication)
    self_grants, how = _owner_access(target, owners, missing, grantor)
    role_plan = None
    if stored is not None or missing or self_grants:
        role_plan = plan_roles(missing, stored or {}, grantor, target.roles, self_grants,
                               reached=needed if not (config.no_privileges or scratch) else set(),
                               source_database=manifest.source.database, target_database=target.info.database)
        report.roles_skipped = list(role_plan.skipped)
    owner_settable = database_owner is not None and (target.role.superuser or (
        target.role.database_owner and target.role.createdb))
    public_grants = _check_privileges(manifest, target, stored, wipe, config,
                                      database_owner if owner_settable else None)
    _check_extensions(manifest, target, wipe)

    clients = discover(config.pg_bin_dirs, config.pg_bin_dirs_only)
    client = select_restore_client(
        clients, manifest.client.pg_dump_major, target.major, manifest.client.compression, conn_info.sslmode
    )
    report.pg_restore_version = client.version
    free = scratch_free_bytes(scratch_parent)
    needed = manifest.dump.size + (manifest.dump.plaintext_size or 0)  # an encrypted dump: both, while decrypting
    if free < needed + SCRATCH_HEADROOM:
        raise PreflightError(
            f"scratch directory {scratch_parent} has {free} bytes free; the dump needs {needed} "
            "plus 16 MiB of headroom",
            hint="point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at a larger volume",
        )
    forced = [line for line in manifest.schema_fingerprint.get("row_security", []) if line.endswith("forced=true")]
    plan = RestorePlan(
        backup_id=keys.backup_id,
        backup_uri=report.backup_uri,
        manifest_format=manifest.format_version,
        dump_key=manifest.dump.key,
        dump_size=manifest.dump.size,
        dump_sha256=manifest.dump.sha256,
        target=conn_info.display(),
        target_database=target.info.database,
        target_server_version=target.info.version,
        target_objects=len(target.objects),
        restore_role=target.role.name,
        restore_role_kind=_role_kind(target.role),
        wipe=wipe,
        safety_backup_dir=(_safety_location(config, storage, keys) if wipe and config.safety_backup else None),
        pg_restore_version=client.version,
        jobs=max(1, config.jobs or cpu_count()),
        no_owner=config.no_owner,
        no_privileges=config.no_privileges,
        phased=not target.role.superuser,
        tolerate_transaction_timeout=client.major >= 17 and target.major < 17,
        roles_to_create=[c.name for c in role_plan.create] if role_plan else [],
        role_attributes_dropped=role_plan.dropped if role_plan else {},
        memberships_to_grant=list(self_grants),
        owners=how,
        rls_counting=_rls_counting(target.role, forced),
        sequence_check=("the source's recorded state" if manifest.sequences is not None
                        else "format 1 manifest: at or past max(column), ascending only"),
        tables=len(manifest.tables),
        tenants=len(manifest.tenant_totals()),
        scratch_dir=str(scratch_parent),
        scratch_free_bytes=free,
        skipped_backups=[s.backup_id for s in resolved.skipped],
        encrypted_to=list(manifest.encryption.recipients) if manifest.encryption else [],
        database_owner=database_owner if owner_settable else None,
        public_grants=public_grants,
        database_state=(_database_state_step(manifest) if not scratch else
                        "not applied (a scratch restore: database-level state is not compared)"),
        sessions=[s.describe() for s in target.sessions],
        close_door=close_door,
    )
    report.plan = plan
    return RestoreContext(config, storage, keys, manifest, target, client, plan, role_plan, report, scratch_parent)


def _scratch_parent(config: RestoreConfig) -> Path:
    path = Path(config.scratch_dir or tempfile.gettempdir())
    if not path.is_dir():
        raise ConfigError(
            f"scratch directory {path} does not exist or is not a directory",
            hint="create it, or point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at an existing volume",
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"scratch directory {path} is not writable",
            hint="point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at a writable volume",
        )
    return path


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


def _check_dump_object(storage: Storage, keys: BackupKeys, manifest: Manifest) -> None:
    uri = storage.config.uri(keys.dump)
    head = storage.head(keys.dump)
    if head.get("StorageClass") in ARCHIVED_CLASSES and 'ongoing-request="false"' not in head.get("Restore", ""):
        raise StorageError(
            f"{uri} is in {head['StorageClass']} and must be restored from the archive first",
            hint="aws s3api restore-object --bucket ... --key ... --restore-request Days=2; retry when it completes",
        )
    if int(head["ContentLength"]) != manifest.dump.size:
        raise VerifyError(
            f"{uri} is {head['ContentLength']} bytes but its manifest says {manifest.dump.size}: truncated or replaced",
            hint="restore another backup",
        )


def _inspect_target(config: RestoreConfig, conn_info: ConnInfo, owners: list[str]) -> TargetInfo:
    major = probe_server_major(conn_info)
    session = SessionSettings(server_major=major, lock_timeout_ms=config.lock_wait_timeout_s * 1000)
    with conn_info.connect(session) as conn:
        objects = pgcatalog.user_objects(conn)
        row = conn.execute("SELECT COALESCE((SELECT has_schema_privilege(oid, 'CREATE') FROM pg_namespace "
                           "WHERE nspname = 'public'), false)").fetchone()
        return TargetInfo(
            conn_info=conn_info,
            major=major,
            session=session,
            info=pgcatalog.server_info(conn),
            objects=objects,
            role=pgcatalog.restore_role(conn),
            roles=pgcatalog.existing_roles(conn),
            access=pgcatalog.role_access(conn, owners),
            extensions=pgcatalog.extension_info(conn),
            undroppable=pgcatalog.undroppable_objects(conn) if config.clean and objects else [],
            create_on_public=bool(row[0]) if row else False,
            sessions=settled_sessions(conn),
        )


def _identity(info: pgcatalog.ServerInfo, conn_info: ConnInfo) -> tuple[str, str]:
    return (info.system_identifier or f"{conn_info.host}:{conn_info.params.get('port', '5432')}", info.database)


def _refuse_unsafe_target(config: RestoreConfig, manifest: Manifest, target: TargetInfo) -> None:
    target_id = _identity(target.info, target.conn_info)
    live = False
    if config.live_source_url:
        try:
            live_info = ConnInfo.parse(config.live_source_url, what="AGENT_BOM_POSTGRES_URL")
            with live_info.connect(SessionSettings()) as conn:
                live = _identity(pgcatalog.server_info(conn), live_info) == target_id
        except (PreflightError, ConfigError) as exc:
            event(get_logger(), "cannot compare the target with the live database (AGENT_BOM_POSTGRES_URL); "
                  "comparing with the backup's source instead", level=logging.WARNING, error=str(exc))
    if manifest.source.system_identifier and (manifest.source.system_identifier, manifest.source.database) == target_id:
        live = True
    if live and not config.approval:
        raise RefusedError(
            f"target {target.conn_info.display()} is the live source database of this backup",
            hint="restore into a staging database first; to restore over production pass --approval INCIDENT-ID "
            "once incident command approved the data-loss window",
        )
    if target.objects and not config.clean:
        shown = ", ".join(target.objects[:3]) + (" ..." if len(target.objects) > 3 else "")
        raise RefusedError(
            f"target database {target.info.database} is not empty ({len(target.objects)} objects: {shown})",
            hint=f"restore into an empty database, or pass --clean --confirm-target {target.info.database}",
        )
    if config.clean and target.objects and config.confirm_target != target.info.database:
        raise RefusedError(
            f"--clean would replace database {target.info.database} but --confirm-target is "
            f"{config.confirm_target or 'not set'}",
            hint=f"pass --confirm-target {target.info.database}",
        )


def _scratch(config: RestoreConfig) -> bool:
    """``verify --deep`` without a superuser (``--no-owner --no-privileges``): the
    database's own state is neither applied nor compared (a requested omission, not
    "not restored"). With a superuser it restores, and compares, everything."""
    return config.purpose != "restore" and (config.no_owner or config.no_privileges)


def _roles_file(storage: Storage, manifest: Manifest, identity_file: str | None) -> RolesFile | None:
    """The backup's roles object, checked against its manifest and parsed as data: a
    statement pg_dumpall does not write refuses the restore here, before any change."""
    if manifest.roles is None:
        return None
    data = storage.get_bytes(manifest.roles.key)
    if hashlib.sha256(data).hexdigest() != manifest.roles.sha256:
        raise VerifyError(f"roles object {storage.config.uri(manifest.roles.key)} does not match its manifest",
                          hint="restore another backup")
    return parse_globals(agecrypt.roles_plaintext(data, manifest, identity_file).decode())


def _needed_roles(manifest: Manifest, roles_file: RolesFile | None, config: RestoreConfig, scratch: bool) -> set[str]:
    """The roles the restore needs: those the archive names and, unless privileges are
    left out, every role its memberships reach (by the roles object's graph; format 3
    adds the reach recorded at backup)."""
    seeds = set(manifest.roles_needed(owners=not config.no_owner, privileges=not config.no_privileges,
                                      database=not scratch))
    if config.no_privileges or scratch or roles_file is None:
        return seeds
    edges = [(m.role, m.member) for m in roles_file.memberships]
    privileged = {name for name, role in roles_file.roles.items() if role.privileged}
    return reached_roles(seeds, edges, privileged) | seeds


def _database_state_step(manifest: Manifest) -> str:
    if manifest.database is None:
        return (f"manifest format {manifest.format_version} does not record the database's own state (owner, ACL, "
                "settings, role settings, memberships): not restored, not verified")
    return ("apply the database's recorded state to the target database: connection limit, comment, ACL, "
            f"settings, role settings; verify them and the memberships among {len(manifest.database.reached_roles)} "
            "roles the archive reaches")


def _stored_roles(manifest: Manifest, target: TargetInfo, missing: list[str], config: RestoreConfig,
                  roles_file: RolesFile | None) -> RolesFile | None:
    """The parsed roles object when the restore may use it (refusals when roles are
    missing and may not be created)."""
    role = target.role
    if missing and not config.create_missing_roles:
        raise RefusedError(
            f"the target server lacks roles the backup names: {', '.join(missing)}",
            hint="create them, or pass --create-missing-roles to create them from the stored roles object "
            "(or --no-owner --no-privileges for a scratch copy)",
        )
    if missing and not (role.superuser or role.createrole):
        raise RefusedError(
            f"the target server lacks roles the backup names: {', '.join(missing)}, and restore role {role.name} "
            "may not create roles (no CREATEROLE)",
            hint="restore as the instance's admin role (CREATEROLE; rds_superuser, cloudsqlsuperuser, "
            "azure_pg_admin), or have it create these roles first",
        )
    if roles_file is None and missing:
        raise RefusedError(f"roles {', '.join(missing)} are missing and this backup has no roles object")
    return roles_file


def _owner_access(target: TargetInfo, owners: list[str], missing: list[str],
                  grantor: Grantor) -> tuple[list[str], dict[str, str]]:
    """How the restore role will act as each owner role (pg_restore's ALTER ... OWNER TO
    needs it), the memberships to grant for that, or a refusal naming the GRANT a
    platform admin must run."""
    role = target.role
    how: dict[str, str] = {}
    grants: list[str] = []
    blocked: list[str] = []
    for owner in owners:
        access = target.access.get(owner)
        if role.superuser:
            how[owner] = "superuser"
        elif owner == role.name:
            how[owner] = "is the restore role"
        elif owner in missing:
            how[owner] = f"created by {role.name}, then granted to it"
            grants.append(owner)
        elif access is not None and access.can_set and access.inherits:
            how[owner] = f"{role.name} is a member"
        elif access is not None and target.major < 16 and role.createrole and not access.superuser and role.inherit:
            how[owner] = f"granted to {role.name} (CREATEROLE)"
            grants.append(owner)
        elif access is not None and target.major >= 16 and access.admin:
            how[owner] = f"granted to {role.name} (it has ADMIN on the role)"
            grants.append(owner)
        else:
            blocked.append(owner)
    if blocked:
        statement = "; ".join(grantor.self_grant(owner) for owner in blocked)
        raise RefusedError(
            f"restore role {role.name} cannot act as {', '.join(blocked)}, which own(s) objects in the backup: "
            "pg_restore could not give the restored objects their owners",
            hint=f"a platform admin runs: {statement}; or restore as a superuser, or with --no-owner "
            "--no-privileges for a scratch copy",
        )
    return grants, how


def _check_privileges(manifest: Manifest, target: TargetInfo, stored: RolesFile | None, wipe: bool,
                      config: RestoreConfig, database_owner: str | None = None) -> list[str]:
    """What a non-superuser needs to create the backup's objects and give them their owners.
    ``database_owner``: the recorded owner the target database gets before pg_restore
    (then ``public``'s CREATE is its). Returns the owners of objects in ``public`` the
    restore gives CREATE on it when the database's owner cannot be set (a database the
    restore role owns: it may grant it), instead of refusing."""
    role = target.role
    if role.superuser:
        return []
    fingerprint = manifest.schema_fingerprint
    schemas = {line.split(" ", 1)[1] for line in fingerprint.get("schemas", [])}
    problems = []
    if schemas - {"public"} and not role.create_on_database:
        problems.append(f"it may not create schemas in database {target.info.database} (no CREATE on it)")
    in_public = any(_schema_of(line) == "public" for line in fingerprint.get("owners", []))
    if in_public and not (role.database_owner if wipe else target.create_on_public):
        problems.append("it may not create objects in schema public"
                        + (" (the wipe recreates it owned by the database owner)" if wipe else ""))
    public_grants: list[str] = []
    if not config.no_owner:
        owner = database_owner or role.database_owner_name
        for problem in _owners_without_create(manifest, stored.roles if stored else None, owner):
            name, schema = problem.removeprefix("owner ").split(" has no CREATE on schema ")
            if schema == "public" and database_owner is None and role.database_owner:
                public_grants.append(name)
            else:
                problems.append(problem)
    if problems:
        raise RefusedError(
            f"restore role {role.name} (not a superuser) cannot restore this backup faithfully: {'; '.join(problems)}",
            hint="restore into a database the restore role owns, as a superuser, or with --no-owner --no-privileges",
        )
    return public_grants


def _schema_of(owner_line: str) -> str | None:
    """The schema in a fingerprint ``owners`` line ('r public.t owner', 'function s.f(..) owner')."""
    kind, _, rest = owner_line.partition(" ")
    if kind == "schema":
        return None
    match = re.match(r'^("(?:[^"]|"")+"|[^."]+)\.', rest)
    return match.group(1) if match else None


def _owners_without_create(manifest: Manifest, stored: dict[str, StoredRole] | None,
                           database_owner: str) -> list[str]:
    """Owner roles of objects in a schema they may not create in (by the backup's grants,
    the memberships in its roles object, and ``public`` belonging to the target
    database's owner): PostgreSQL lets only a superuser give such a role an object there."""
    fingerprint = manifest.schema_fingerprint
    schema_owner = {"public": "pg_database_owner"}
    for line in fingerprint.get("owners", []):
        if line.startswith("schema "):
            name, _, owner = line[len("schema "):].rpartition(" ")
            schema_owner[name] = owner
    grants = set(fingerprint.get("grants", []))

    def roles_of(role: str) -> set[str]:
        seen, todo = {role, "PUBLIC"}, [role]
        while todo:
            current = (stored or {}).get(todo.pop())
            for parent in current.member_of if current else []:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        if database_owner in seen:
            seen.add("pg_database_owner")
        return seen

    problems = set()
    for line in fingerprint.get("owners", []):
        schema = _schema_of(line)
        if schema is None:
            continue
        owner = line.rpartition(" ")[2]
        roles = roles_of(owner)
        if schema_owner.get(schema) in roles or any(f"schema {schema} {r} CREATE" in grants for r in roles):
            continue
        problems.add(f"owner {owner} has no CREATE on schema {schema}")
    return sorted(problems)


def _check_extensions(manifest: Manifest, target: TargetInfo, wipe: bool) -> None:
    missing = sorted(set(manifest.extensions) - set(target.extensions))
    if missing:
        raise RefusedError(
            f"the target server cannot install extensions the backup uses: {', '.join(missing)}",
            hint="install them on the target server (pg_available_extensions), then retry",
        )
    if target.role.superuser:
        return
    untrusted = sorted(
        name for name in manifest.extensions
        if not target.extensions[name].trusted
        and not (target.extensions[name].installed and (not wipe or target.extensions[name].schema == "pg_catalog"))
    )
    if untrusted:
        raise RefusedError(
            f"restore role {target.role.name} is not a superuser and extension(s) {', '.join(untrusted)} are not "
            "trusted: it may not create them",
            hint=f"a platform admin creates them in database {target.info.database} first (CREATE EXTENSION ...; "
            "on RDS/Azure allow-list them), then retry",
        )


def _role_kind(role: pgcatalog.RestoreRole) -> str:
    if role.superuser:
        return "superuser"
    if role.createrole:
        return "CREATEROLE admin" + ("" if role.bypassrls else " without BYPASSRLS")
    if role.database_owner:
        return "database owner"
    return "role"


def _rls_counting(role: pgcatalog.RestoreRole, forced: list[str]) -> str:
    if role.sees_every_row:
        return "superuser or BYPASSRLS sees every row"
    if forced:
        return (f"as the tables' owner, FORCE lifted on {len(forced)} table(s) inside the counting transaction "
                "and rolled back")
    return "as the tables' owner (no table forces row-level security)"


# --------------------------------------------------------------------------- the executor
def execute(ctx: RestoreContext) -> None:
    """prepare -> change -> restore -> verify. A failure once the target database was
    changed becomes a :class:`ChangedError` naming what changed and how to go back."""
    log = get_logger()
    with tempfile.TemporaryDirectory(prefix="agent-bom-restore-", dir=ctx.scratch_parent) as scratch:
        ctx.step("prepare")
        dump_path = Path(scratch) / (ctx.keys.backup_id + ".dump")
        downloaded = agecrypt.download_path(dump_path, ctx.manifest)
        _download_verified(ctx.storage, ctx.keys, ctx.manifest, downloaded, ctx.config.parallel_download_threshold)
        agecrypt.decrypt_dump(downloaded, dump_path, ctx.manifest, ctx.config.identity_file)
        toc = _read_toc(ctx.client, dump_path)
        _check_archive(ctx, dump_path)
        if ctx.role_plan is not None and not ctx.role_plan.empty:
            ctx.checkpoint(in_progress="creating the missing roles and the restore role's memberships")
        _apply_roles(ctx)
        try:
            if ctx.plan.close_door:
                ctx.step("change")
                _close_the_door(ctx)
            if ctx.plan.wipe:
                ctx.step("change")
                if ctx.config.safety_backup:
                    ctx.report.safety_backup = _safety_backup(ctx)
                    ctx.checkpoint()
                ctx.checkpoint(in_progress=f"dropping every user schema of {ctx.target.info.database} "
                               "(one transaction: all or nothing)")
                _wipe(ctx)
            ctx.step("restore")
            _database_owner(ctx)
            ctx.changed("pg_restore started: the backup is (partially) restored")
            ctx.report.tolerated_errors = _pg_restore(ctx, dump_path, toc, Path(scratch))
            ctx.changes[-1] = "restored the backup with pg_restore"
            _database_state(ctx)
            ctx.step("verify")
            _verify(ctx)
            _open_with_recorded_acl(ctx)
        except BackupError as exc:
            _open_the_door(ctx)
            if ctx.target_changed:
                raise ChangedError(exc, changes=ctx.changes, recovery=_recovery(ctx)) from None
            raise
        except Exception as exc:  # noqa: BLE001 - the target was changed: say so, whatever the error
            _open_the_door(ctx)
            if not ctx.target_changed:
                raise
            log.debug("unexpected error after changes", exc_info=True)
            cause = BackupError(f"unexpected error: {type(exc).__name__}: {exc}")
            raise ChangedError(cause, changes=ctx.changes, recovery=_recovery(ctx)) from None
        finally:
            _open_the_door(ctx)


def _check_archive(ctx: RestoreContext, dump_path: Path) -> None:
    """What the archive uses that the target lacks (archivecheck.py), before any change:
    missing collations or text search configurations refuse; missing tablespaces make the
    restore run with --no-tablespaces, said in the plan."""
    needs = parse_definitions(read_definitions(ctx.client, dump_path))
    try:
        with ctx.target.conn_info.connect(ctx.target.session) as conn:
            check = check_target(conn, needs)
    except psycopg.Error as exc:
        raise PreflightError(f"cannot inspect the target's tablespaces and collations: "
                             f"{str(exc).strip().splitlines()[0]}") from None
    ctx.plan.no_tablespaces = bool(check.missing_tablespaces)
    ctx.plan.archive_steps = check.steps()
    if check.missing_tablespaces:
        event(get_logger(), "restoring without tablespaces: the target lacks them", level=logging.WARNING,
              tablespaces=check.missing_tablespaces)


def _dry_run_archive(ctx: RestoreContext) -> None:
    """A dry run reads the archive too (downloaded and verified into the scratch space,
    then deleted), so the plan shows what the archive needs from the target."""
    with tempfile.TemporaryDirectory(prefix="agent-bom-restore-", dir=ctx.scratch_parent) as scratch:
        dump_path = Path(scratch) / (ctx.keys.backup_id + ".dump")
        downloaded = agecrypt.download_path(dump_path, ctx.manifest)
        _download_verified(ctx.storage, ctx.keys, ctx.manifest, downloaded, ctx.config.parallel_download_threshold)
        agecrypt.decrypt_dump(downloaded, dump_path, ctx.manifest, ctx.config.identity_file)
        _check_archive(ctx, dump_path)


def _close_the_door(ctx: RestoreContext) -> None:
    """REVOKE CONNECT and end the other sessions (sessions.py), before the safety dump."""
    target = ctx.target
    ctx.checkpoint(in_progress=f"revoking CONNECT on database {target.info.database} from every role but "
                   f"{target.role.name} and ending the other sessions")
    try:
        with target.conn_info.connect(target.session) as conn:
            ctx.connect_lock = close_the_door(conn, database=target.info.database, restore_role=target.role.name,
                                              superuser=target.role.superuser,
                                              terminate=ctx.config.terminate_sessions, server_major=target.major)
    except psycopg.Error as exc:
        raise RestoreError(f"cannot revoke CONNECT on database {target.info.database}: "
                           f"{str(exc).strip().splitlines()[0]}; nothing was changed") from None
    lock = ctx.connect_lock
    ctx.changes.append(f"{lock.describe()} (to undo by hand: {'; '.join(lock.undo_statements())})")
    ctx.report.sessions_ended = [s.describe() for s in lock.terminated]
    ctx.checkpoint()


def _open_the_door(ctx: RestoreContext) -> None:
    """Grant back the CONNECT entries revoked: the restore is verified, or has failed."""
    lock = ctx.connect_lock
    if lock is None or lock.released:
        return
    try:
        with ctx.target.conn_info.connect(ctx.target.session) as conn:
            lock.release(conn)
    except (psycopg.Error, BackupError) as exc:
        event(get_logger(), "could not grant CONNECT back on the target database: run the statements by hand",
              level=logging.ERROR, statements="; ".join(lock.undo_statements()), error=str(exc).strip())
        return
    # undone: no longer a change to report (the report keeps sessions_ended)
    ctx.changes[:] = [change for change in ctx.changes if not change.startswith(lock.describe())]
    ctx.checkpoint()


def _download_verified(storage: Storage, keys: BackupKeys, manifest: Manifest, path: Path,
                       parallel_threshold: int | None) -> None:
    log = get_logger()
    started = time.monotonic()
    progress = Progress("downloading", DOWNLOAD_PROGRESS_INTERVAL_S)

    def downloaded(done: int) -> None:
        progress.update(bytes=done, of=manifest.dump.size, percent=round(100 * done / max(manifest.dump.size, 1), 1))

    size, digest = storage.download(keys.dump, path, progress=downloaded, parallel_threshold=parallel_threshold)
    if size != manifest.dump.size or digest != manifest.dump.sha256:
        raise VerifyError(
            f"{storage.config.uri(keys.dump)} does not match its manifest "
            f"(size {size} vs {manifest.dump.size}, sha256 {digest[:12]}... vs {manifest.dump.sha256[:12]}...): "
            "corrupted or truncated; the target was not touched",
            hint="restore another backup",
        )
    event(log, "dump downloaded and verified", bytes=size, sha256=digest, seconds=round(time.monotonic() - started, 1))


_TOC_LINE = re.compile(r"^\d+; \d+ \d+ (?P<what>.*)$")


def _read_toc(client: PgClient, dump_path: Path) -> list[str]:
    """The archive's table of contents (``pg_restore --list``): the restore's units of work."""
    result = subprocess.run([str(client.tool("pg_restore")), "--list", str(dump_path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        lines = redact_url(result.stderr).strip().splitlines()
        raise RestoreError(
            f"pg_restore {client.version} cannot read the archive's table of contents: "
            f"{lines[-1] if lines else result.returncode}; the target was not touched",
            hint="restore another backup, or with a newer pg_restore (--pg-bin-dir)",
        )
    return [line for line in result.stdout.splitlines() if _TOC_LINE.match(line)]


def _apply_roles(ctx: RestoreContext) -> None:
    """Create the missing roles and grant the restore role its memberships, in one
    transaction: the last step of prepare, the only change before the wipe."""
    if ctx.role_plan is None or ctx.role_plan.empty:
        return
    log = get_logger()
    with ctx.target.conn_info.connect(ctx.target.session) as conn:
        applied = apply_roles(conn, ctx.role_plan)
    report = ctx.report
    report.roles_created = applied.created
    report.roles_needing_password = applied.need_password
    report.roles_attributes_dropped = applied.dropped
    report.memberships_granted = applied.self_granted
    report.memberships_recreated = applied.memberships
    report.role_statements = applied.statements
    report.not_restored.extend(asdict(item) for item in applied.not_restored)
    if applied.memberships:
        ctx.changes.append(f"granted memberships {'; '.join(applied.memberships)} (left in place)")
    if applied.created:
        ctx.changes.append(f"created roles {', '.join(applied.created)} (cluster-wide, left in place)")
    if applied.self_granted:
        ctx.changes.append(f"granted {ctx.target.role.name} membership in {', '.join(applied.self_granted)} "
                           "(left in place)")
    for name in applied.need_password:
        event(log, "created login role without a password: set one before the application connects",
              role=name, level=logging.WARNING)


def _database_owner(ctx: RestoreContext) -> None:
    """Before pg_restore: the database gets its recorded owner (whose ``public`` the
    archive's objects are created in), or the owners of objects in ``public`` get CREATE
    on it; the owner that could not be set is "not restored"."""
    plan, target, record, config = ctx.plan, ctx.target, ctx.manifest.database, ctx.config
    recorded = record.owner if record is not None and not config.no_owner and not _scratch(config) and \
        record.owner != dbstate.ADMINISTRATOR else None
    if record is not None and record.owner == dbstate.ADMINISTRATOR and not config.no_owner and not _scratch(config):
        _administrator_owner(ctx)
    if not plan.public_grants and recorded is None:
        return
    line = f"owner {dbstate.quote_ident(recorded)}" if recorded else ""
    statement = dbstate.statement_for(dbstate.DATABASE_CATEGORY, line, target.info.database) if recorded else ""
    with target.conn_info.connect(target.session) as conn:
        if recorded and recorded == pgcatalog.restore_role(conn).database_owner_name:
            return  # already its owner (a --clean over the application's own database)
        if plan.database_owner and record is not None:
            error = dbstate.set_owner(conn, record, target.info.database)
            if error is None:
                ctx.changed(f"made {plan.database_owner} the owner of database {target.info.database}")
                ctx.report.database_statements.append(statement)
                return
        else:
            error = (f"restore role {target.role.name} may not make {recorded} the database's owner (it needs to own "
                     "the database, CREATEDB and membership in the role)")
        if recorded:
            ctx.report.not_restored.append(asdict(dbstate.NotRestored(f"{dbstate.DATABASE_CATEGORY}: {line}",
                                                                      statement, error)))
        for owner in plan.public_grants:
            statement = f"GRANT CREATE ON SCHEMA public TO {dbstate.quote_ident(owner)}"
            conn.execute(statement)
            ctx.report.privileges_granted.append(statement)
            ctx.changed(f"granted CREATE on schema public to {owner}")


def _administrator_owner(ctx: RestoreContext) -> None:
    """A database the source's administrator owned, restored into one an application role
    owns (a --clean over it): left as it is, and listed with the statement that makes the
    restore role (the target's administrator) its owner."""
    target = ctx.target
    with target.conn_info.connect(target.session) as conn:
        row = conn.execute("SELECT pg_get_userbyid(d.datdba), r.rolsuper OR r.rolcreaterole FROM pg_database d "
                           "JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()").fetchone()
    if row is None or row[1] or row[0] == target.role.name:
        return
    line = f"owner {dbstate.ADMINISTRATOR}"
    ctx.report.not_restored.append(asdict(dbstate.NotRestored(
        f"{dbstate.DATABASE_CATEGORY}: {line}",
        dbstate.statement_for(dbstate.DATABASE_CATEGORY, line, target.info.database),
        f"the source database was owned by its administrator; {row[0]} owns the target")))


def _database_state(ctx: RestoreContext) -> None:
    """After pg_restore: the recorded connection limit, comment, ACL, settings and role
    settings, one savepoint each; what the restore role may not apply is "not restored"
    with the statement to run. A scratch restore's omissions are not applied, not listed.
    While CONNECT is revoked (sessions.py) the ACL waits for verification: applying it now
    would let the application in before the restore is verified."""
    record, config, target = ctx.manifest.database, ctx.config, ctx.target
    if record is None or _scratch(config):
        return
    skip = frozenset(k for k, off in (("owner", config.no_owner), ("acl", config.no_privileges),
                                      ("role setting", config.no_privileges)) if off)
    door_closed = ctx.connect_lock is not None and not ctx.connect_lock.released
    with target.conn_info.connect(target.session) as conn:
        actual = _target_state(ctx, conn, record)
        if door_closed and "acl" not in skip:
            want = set(record.fingerprint()[dbstate.DATABASE_CATEGORY])
            have = set(actual.fingerprint()[dbstate.DATABASE_CATEGORY])
            ctx.deferred_acl = {line for line in want ^ have if line.startswith("acl ")}
            skip = skip | {"acl"}
        applied = _record_applied(ctx, dbstate.apply(conn, record, actual, target.info.database, skip=skip))
    if applied.statements:
        ctx.changed(f"applied the database's recorded state ({len(applied.statements)} statement(s))")


def _target_state(ctx: RestoreContext, conn: psycopg.Connection, record: dbstate.DatabaseRecord
                  ) -> dbstate.DatabaseRecord:
    """The target database's state as it stands, in the recorded one's terms."""
    return dbstate.capture(conn, set(), administrator=ctx.target.role.name, reached=set(record.reached_roles),
                           name=record.name)


def _record_applied(ctx: RestoreContext, applied: dbstate.Applied) -> dbstate.Applied:
    """What applying recorded state ran, and what it could not, into the report."""
    ctx.report.database_statements.extend(applied.statements)
    ctx.report.not_restored.extend(asdict(item) for item in applied.not_restored)
    return applied


def _open_with_recorded_acl(ctx: RestoreContext) -> None:
    """The restore is verified: CONNECT comes back as the backup recorded it (the database's
    ACL made exactly the recorded one), not as the target had it. Without a recorded ACL to
    apply, the entries revoked are granted back (_open_the_door)."""
    lock, record, target = ctx.connect_lock, ctx.manifest.database, ctx.target
    if lock is None or lock.released or record is None or not ctx.deferred_acl:
        _open_the_door(ctx)
        return
    with target.conn_info.connect(target.session) as conn:
        applied = _record_applied(ctx, dbstate.apply(conn, record, _target_state(ctx, conn, record),
                                                     target.info.database, skip=dbstate.LINE_KINDS - {"acl"}))
    lock.released = True
    ctx.changes[:] = [change for change in ctx.changes if not change.startswith(lock.describe())]
    event(get_logger(), "CONNECT on the target database set as the backup recorded it", database=lock.database,
          statements=len(applied.statements))
    ctx.checkpoint()


def _safety_location(config: RestoreConfig, storage: Storage, keys: BackupKeys) -> str:
    if config.safety_backup_to_bucket:
        return safety_storage(storage.config, keys.prefix).uri(safety_storage(storage.config, keys.prefix).prefix + "/")
    return str(_safety_dir(config))


def _safety_backup_in_bucket(ctx: RestoreContext) -> str:
    """A backup of the target like any other, under <prefix>/safety/ (safety.py), encrypted
    to the restored backup's recipients when it was. A role that does not see every row
    first proves the policies hide none from it."""
    target, config = ctx.target, ctx.config
    if not target.role.sees_every_row:
        try:
            _safety_backup_under_row_security(ctx, None, None, None)
        except psycopg.Error as exc:
            raise DumpError(f"safety backup of {target.info.database} failed: {str(exc).strip().splitlines()[0]}; "
                            "nothing was dropped") from None
    # encrypted to the restored backup's recipients when it was (as the local safety dump is)
    encrypt_to = tuple(ctx.manifest.encryption.recipients) if ctx.manifest.encryption is not None else ()
    uri = backup_to_bucket(target.conn_info, safety_storage(ctx.storage.config, ctx.keys.prefix),
                           sees_every_row=target.role.sees_every_row, lock_wait_timeout_s=config.lock_wait_timeout_s,
                           pg_bin_dirs=config.pg_bin_dirs, pg_bin_dirs_only=config.pg_bin_dirs_only,
                           encrypt_to=encrypt_to)
    event(get_logger(), "safety backup written", uri=uri)
    return uri


def _safety_dir(config: RestoreConfig) -> Path:
    return Path(config.safety_backup_dir or os.path.join(os.getcwd(), "agent-bom-safety-backups"))


def _safety_backup(ctx: RestoreContext) -> str:
    """The runbook: snapshot the current database if it is still reachable.

    A role without BYPASSRLS cannot dump FORCE-RLS tables with row security off (the way
    that guarantees every row); it dumps them with row security on, and the dump counts
    only if it is complete: inside the snapshot the dump read, the rows its policies let
    it see are counted, then (FORCE lifted, rolled back) every row. Any difference is a
    refusal before the wipe."""
    config, target = ctx.config, ctx.target
    if config.safety_backup_to_bucket:
        return _safety_backup_in_bucket(ctx)
    directory = _safety_dir(config)
    try:
        # a full copy of the database: 0600 in a 0700 directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:
        raise PreflightError(
            f"cannot create the safety backup directory {directory}: {exc.strerror}",
            hint="set --safety-backup-dir to a writable volume, or decline with --no-safety-backup",
        ) from None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{target.info.database}-before-{ctx.keys.backup_id}-{stamp}.dump"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # pg_dump --file keeps the mode
    client = select_dump_client(
        discover(config.pg_bin_dirs, config.pg_bin_dirs_only), target.major, target.conn_info.sslmode
    )
    options = DumpOptions(compression=Compression("gzip", 1), snapshot=None,
                          lock_wait_timeout_s=config.lock_wait_timeout_s)
    if target.role.sees_every_row:
        try:
            dump_to_file(client, target.conn_info, target.session, options, path)
        except DumpError:
            path.unlink(missing_ok=True)
            raise
    else:
        try:
            _safety_backup_under_row_security(ctx, client, options, path)
        except psycopg.Error as exc:
            path.unlink(missing_ok=True)
            raise DumpError(f"safety dump of {target.info.database} failed: {str(exc).strip().splitlines()[0]}; "
                            "nothing was dropped") from None
    ctx.safety_client = client
    path = agecrypt.safety_backup_encrypted(path, ctx.manifest)
    event(get_logger(), "safety backup written", path=str(path), bytes=path.stat().st_size)
    return str(path)


def _safety_backup_under_row_security(ctx: RestoreContext, client: PgClient | None, options: DumpOptions | None,
                                      path: Path | None) -> None:
    """The dump into ``path`` (None: only the proof that the policies hide no row)."""
    target = ctx.target
    session = replace(target.session, row_security=True)
    with target.conn_info.connect(session, autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        tables = pgcatalog.rls_tables(conn)
        foreign = [f"{t.schema}.{t.name}" for t in tables if not t.owned]
        if foreign:
            conn.rollback()
            raise RefusedError(
                f"restore role {target.role.name} (no BYPASSRLS) cannot take a complete safety dump of "
                f"{target.info.database}: row-level security applies to tables it does not own: "
                f"{', '.join(foreign[:5])}; nothing was dropped",
                hint="restore as a role with BYPASSRLS (or a superuser), or take a platform snapshot of the "
                "database (RDS/Aurora snapshot, Cloud SQL or Azure backup) and pass --no-safety-backup",
            )
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        names = [(t.schema, t.name) for t in tables]
        visible = _counts(conn, names)
        if path is not None and client is not None and options is not None:
            dump_to_file(client, target.conn_info, target.session,
                         replace(options, snapshot=snapshot, enable_row_security=True), path)
        for table in tables:
            if table.forced:
                conn.execute(psycopg.sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(
                    psycopg.sql.Identifier(table.schema, table.name)))
        every = _counts(conn, names)
        conn.rollback()
    hidden = [f"{name} ({visible[name]} of {rows})" for name, rows in every.items() if visible.get(name) != rows]
    if hidden:
        if path is not None:
            path.unlink(missing_ok=True)
        raise RefusedError(
            f"a safety dump by restore role {target.role.name} (no BYPASSRLS) would miss rows that row-level "
            f"security hides from it: {', '.join(hidden)}; nothing was dropped",
            hint="restore as a role with BYPASSRLS (or a superuser), or take a platform snapshot of the database "
            "(RDS/Aurora snapshot, Cloud SQL or Azure backup) and pass --no-safety-backup",
        )


def _counts(conn: psycopg.Connection, tables: list[tuple[str, str]]) -> dict[str, int]:
    found = {}
    for schema, table in tables:
        row = conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
            psycopg.sql.Identifier(schema, table))).fetchone()
        found[f"{schema}.{table}"] = int(row[0]) if row else 0
    return found


def _wipe(ctx: RestoreContext) -> None:
    """Drop everything that makes the target non-empty, in one transaction: event
    triggers, publications, large objects, every user schema; then recreate ``public``
    as initdb makes it."""
    target = ctx.target
    public_owner = "pg_database_owner" if target.major >= 15 else "CURRENT_USER"
    public_grant = "USAGE" if target.major >= 15 else "ALL"
    ident = psycopg.sql.Identifier
    try:
        with target.conn_info.connect(target.session) as conn, conn.transaction():
            for (name,) in conn.execute("SELECT evtname FROM pg_event_trigger").fetchall():
                conn.execute(psycopg.sql.SQL("DROP EVENT TRIGGER {}").format(ident(name)))
            for (name,) in conn.execute("SELECT pubname FROM pg_publication").fetchall():
                conn.execute(psycopg.sql.SQL("DROP PUBLICATION {}").format(ident(name)))
            conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
            schemas = pgcatalog.first_column(conn, f"SELECT nspname FROM pg_namespace n WHERE {pgcatalog.USER_SCHEMAS}")
            for schema in schemas:
                conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(ident(schema)))
            conn.execute(f"CREATE SCHEMA public AUTHORIZATION {public_owner}")
            conn.execute(f"GRANT {public_grant} ON SCHEMA public TO PUBLIC")
    except psycopg.Error as exc:
        raise RestoreError(f"cleaning the target failed (nothing was dropped): {str(exc).strip().splitlines()[0]}") from None
    ctx.changed(f"dropped every user schema of {target.info.database} ({len(target.objects)} objects)")
    event(get_logger(), "target cleaned", schemas=len(schemas), objects=len(target.objects))


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


# --------------------------------------------------------------------------- pg_restore
_ERROR_MESSAGE = re.compile(r"\berror: (.*)$", re.MULTILINE)
_ERRORS_IGNORED = re.compile(r"errors ignored on restore: (\d+)")
#: pg_restore writes "error: " in one piece before every error message
ERROR_PREFIX = "error: "
INTERLEAVED = "an error whose message is interleaved with other pg_restore output (see the full log)"


@dataclass(frozen=True)
class PgRestoreOutcome:
    """pg_restore's exit judged: the real errors (empty: success) and the count of
    tolerated ``SET transaction_timeout`` errors."""

    errors: list[str]
    tolerated: int = 0


def judge_pg_restore(returncode: int, stderr: str, tolerate_transaction_timeout: bool) -> PgRestoreOutcome:
    """Success, or the errors that make this pg_restore run a failure.

    A signal or an exit code other than 0/1 is a failure whatever was printed. Exactly one
    error is tolerated, and only when asked (pg_restore >= 17 into a server < 17): the
    "unrecognized configuration parameter" error of ``SET transaction_timeout = 0``, once
    per connection; a transaction_timeout error from any other statement makes them all
    real. Parallel workers write to the same stderr a piece at a time and their error
    counts never reach the leader's "errors ignored on restore: N", so the decision rests
    on what survives interleaving: pg_restore writes "error: " and each message in one
    piece, so they are counted; the line-based messages only show what went wrong.
    """
    messages = [m.group(1).strip() for m in _ERROR_MESSAGE.finditer(stderr)]
    ignored = _ERRORS_IGNORED.search(stderr)
    total = max(stderr.count(ERROR_PREFIX), int(ignored.group(1)) if ignored else 0)
    timeouts = stderr.count(TRANSACTION_TIMEOUT_QUERY_ERROR)
    tolerable = tolerate_transaction_timeout and timeouts > 0 and timeouts == stderr.count(TRANSACTION_TIMEOUT_STATEMENT)
    tolerated = timeouts if tolerable else 0
    others = [m for m in messages
              if not (tolerable and (TRANSACTION_TIMEOUT_ERROR in m or TRANSACTION_TIMEOUT_QUERY_ERROR.startswith(m)))]
    real_count = max(0, total - tolerated)
    errors = others[:real_count] + [INTERLEAVED] * max(0, real_count - len(others))
    if returncode < 0:
        errors.insert(0, f"pg_restore was killed by signal {-returncode}")
    elif returncode not in (0, 1) or (returncode == 1 and not errors and not tolerated):
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        errors.insert(0, f"pg_restore exited with code {returncode}" + (f": {last}" if last else ""))
    return PgRestoreOutcome(errors, tolerated)


def restore_passes(toc: list[str], phased: bool) -> list[tuple[str, list[str]]]:
    """The pg_restore runs: one with everything, or, for a restore role that is not a
    superuser, three: schemas and their privileges first (so the owners of what they hold
    have CREATE on them when pg_restore sets the owners), then everything else, then
    row-level security switched on (so foreign keys are validated before it applies:
    PostgreSQL validates them as the tables' owner, whom FORCEd policies would refuse)."""
    if not phased:
        return [("restore", toc)]

    def what(line: str) -> str:
        match = _TOC_LINE.match(line)
        return match.group("what") if match else ""

    schemas = [line for line in toc if what(line).startswith(("SCHEMA ", "ACL - SCHEMA "))]
    row_security = [line for line in toc if what(line).startswith("ROW SECURITY ")]
    rest = [line for line in toc if line not in schemas and line not in row_security]
    passes = [("schemas and their privileges", schemas), ("objects and data", rest),
              ("row-level security switched on", row_security)]
    return [(name, lines) for name, lines in passes if lines]


def _pg_restore(ctx: RestoreContext, dump_path: Path, toc: list[str], scratch: Path) -> list[str]:
    config, target, client = ctx.config, ctx.target, ctx.client
    passes = restore_passes(toc, ctx.plan.phased)
    event(get_logger(), "running pg_restore", version=client.version, jobs=ctx.plan.jobs, toc_entries=len(toc),
          passes=len(passes))
    done = 0
    tolerated = 0
    for index, (name, entries) in enumerate(passes):
        argv = [
            str(client.tool("pg_restore")),
            f"--dbname={target.conn_info.tool_conninfo(target.session)}",
            "--no-password",
            f"--jobs={ctx.plan.jobs if len(entries) > 1 else 1}",
        ]
        if config.no_owner:
            argv.append("--no-owner")
        if config.no_privileges:
            argv.append("--no-privileges")
        if ctx.plan.no_tablespaces:
            argv.append("--no-tablespaces")
        if ctx.plan.phased:
            list_file = scratch / f"pass-{index + 1}.list"
            list_file.write_text("\n".join(entries) + "\n")
            argv.append(f"--use-list={list_file}")
        argv += ["--verbose", str(dump_path)]
        returncode, stderr = _run_with_progress(argv, target.conn_info.tool_env(), len(toc), done)
        outcome = judge_pg_restore(returncode, stderr, ctx.plan.tolerate_transaction_timeout)
        if outcome.errors:
            where = f" ({name})" if ctx.plan.phased else ""
            raise RestoreError(f"pg_restore reported {len(outcome.errors)} error(s){where}; first: {outcome.errors[0]}")
        tolerated += outcome.tolerated
        done += len(entries)
    if not tolerated:
        return []
    return [f"{tolerated} x {TRANSACTION_TIMEOUT_ERROR} (pg_restore {client.major} sets it; "
            f"PostgreSQL {target.major} lacks it; harmless)"]


_PROGRESS_LINE = re.compile(r"pg_restore: (processing item|finished item|processing data for table)")


def _run_with_progress(argv: list[str], env: dict[str, str], total: int, done_before: int = 0) -> tuple[int, str]:
    """Run pg_restore --verbose, logging progress every 10 s so a long restore (one big
    table's COPY prints nothing for minutes) never looks hung; returns the exit code and
    the redacted stderr."""
    progress = Progress("restoring", RESTORE_PROGRESS_INTERVAL_S)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert process.stderr is not None
    lines: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            lines.append(raw.decode("utf-8", "replace"))

    reader = threading.Thread(target=drain, name="pg_restore-stderr", daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        while True:
            try:
                returncode = process.wait(timeout=RESTORE_PROGRESS_INTERVAL_S)
                break
            except subprocess.TimeoutExpired:
                done = sum(1 for line in list(lines) if _PROGRESS_LINE.search(line))
                progress.update(items_done=done_before + done, toc_entries=total,
                                seconds=round(time.monotonic() - started))
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        reader.join(timeout=10)
    return returncode, redact_url("".join(lines))


# --------------------------------------------------------------------------- verification
def _verify(ctx: RestoreContext) -> VerificationResult:
    target, manifest, config = ctx.target, ctx.manifest, ctx.config
    session = target.session.inspecting(inspection_settings(manifest))
    try:
        with target.conn_info.connect(session) as conn:
            result = verify_database(conn, manifest, owners=not config.no_owner, privileges=not config.no_privileges,
                                     sees_every_row=target.role.sees_every_row,
                                     database_state=not _scratch(config), restore_role=target.role.name,
                                     accounted=_accounted(ctx))
    except psycopg.Error as exc:
        raise VerifyError(f"verification failed: cannot read the restored database: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    ctx.report.verification = result
    if not result.ok:
        problems = result.problems()
        raise VerifyError(
            f"verification failed: restored database differs from the backup: {problems[0]}"
            + (f" (and {len(problems) - 1} more, see the report)" if len(problems) > 1 else "")
        )
    return result


def _accounted(ctx: RestoreContext) -> dict[str, set[str]]:
    """Fingerprint lines the report already lists: items not restored (each with its
    statement) and the CREATE on public granted in place of the database's owner."""
    accounted: dict[str, set[str]] = {}
    for item in ctx.report.not_restored:
        category, _, line = str(item["item"]).partition(": ")
        accounted.setdefault(category, set()).add(line.removeprefix("not in the backup: "))
    for owner in ctx.plan.public_grants:
        accounted.setdefault("grants", set()).add(f"schema public {owner} CREATE")
    # held back while CONNECT is revoked, applied once verified (_open_with_recorded_acl)
    accounted.setdefault(dbstate.DATABASE_CATEGORY, set()).update(ctx.deferred_acl)
    return accounted


def scratch_free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def default_operator() -> str:
    try:
        return os.environ.get("AGENT_BOM_RESTORE_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

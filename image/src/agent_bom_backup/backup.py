"""The backup operation run by the CronJob: a plan, then its execution.

**plan** (nothing is written; :mod:`backupplan`): the upload plan within the memory budget,
one database connection, which learns the server's major and later holds the snapshot, the
pg_dump for that major and its compression: a :class:`BackupPlan`, logged as ``backup plan``.

**execute**: the snapshot is taken (RLS check, ``pg_export_snapshot()``, sequence states)
and ``pg_dump --snapshot`` starts; its output is read ahead into part buffers. Then, in
background threads: the S3 client is made and the bucket checked (HeadBucket, its region,
one listing of the new backup id's objects: an id already used is passed over); once
pg_dump's output has started (its catalog queries come first), ``pg_dumpall
--globals-only`` (the roles, kept in memory) runs and the same snapshot is counted and
fingerprinted. Once the bucket has answered and the roles are in, the backup id is
claimed (conditional write of ``<id>.claim``, the first write; a run that loses the claim
takes the next free second) and the parts upload;
before the upload is completed the claim is checked again and pg_dump's exit status
read; then the roles object, and the manifest, written last. Every write's requested
encryption is confirmed from the store's answers; the manifest records it.

With ``--encrypt-to`` (client-side encryption, :mod:`agecrypt`) pg_dump's output goes
through age before the part buffers (no plaintext on disk; a 1 MiB queue besides the
parts), the roles object is encrypted too, and the manifest records the recipients and
each object's plaintext size and SHA-256 next to the stored (ciphertext) ones.

pg_dump starts before the bucket has answered: it only reads, and the S3 preflight (most
of it the S3 client's imports) overlaps its catalog queries and its first parts. Nothing
is written before the bucket check, the roles and the claim have succeeded; a failure
kills pg_dump.

Each step returns a typed result (:class:`Snapshot`, :class:`Dumped`, the roles object's
record) and the manifest is assembled once from them (:func:`_manifest`), after the roles
object is written: nothing is filled in later, and no step leaves state for another to read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from . import __version__, completeness, dbstate, pgcatalog, pgroles, tableaccess
from .agecrypt import EncryptedStream, Recipients, encrypt_bytes
from .background import in_background
from .backupplan import (  # noqa: F401 - the plan's names, importable from here as before
    BackupConfig,
    BackupPlan,
    BackupRun,
    _client_with,
    _discover_clients,
    _warn_if_unencrypted,
    plan_backup,
)
from .dump import DumpOptions, DumpStream, dump_globals, pg_dump_argv
from .errors import DumpError, PreflightError
from .log import Progress, event, get_logger
from .manifest import (
    BackupKeys,
    ClientRecord,
    EncryptionRecord,
    Manifest,
    ObjectRecord,
    SequenceRecord,
    SourceRecord,
    TableRecord,
)
from .notify import after_commit
from .parts import PartReader, fill_with
from .pgconn import INSPECTION_SETTINGS
from .storage import Claim, IdTaken, Storage, StorageConfig, StreamUploader, UploadResult, same_second_refusal

#: seconds between "uploading" progress lines
PROGRESS_INTERVAL_S = 15
#: how many seconds on a run looks for a free backup id before it gives up (exit 8)
MAX_ID_SECONDS = 60


@dataclass
class _Inspection:
    """Results gathered inside the snapshot by a helper thread."""

    counts: list[pgcatalog.TableCount] = field(default_factory=list)
    fingerprint: dict[str, list[str]] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    database: dbstate.DatabaseRecord | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Snapshot:
    """What the snapshot's transaction established before pg_dump starts."""

    snapshot_id: str
    info: pgcatalog.ServerInfo
    #: what --exclude-table leaves out (the named tables, their partitions and owned sequences)
    excluded: list[tableaccess.Excluded]
    sequences: list[SequenceRecord]
    #: with --enable-row-security: the statistics sampled before the snapshot
    stats_before: completeness.Stats | None

    @property
    def left_out(self) -> set[tuple[str, str]]:
        return _left_out(self.excluded)


def _left_out(excluded: list[tableaccess.Excluded]) -> set[tuple[str, str]]:
    """(schema, name) of every relation --exclude-table leaves out: what the counts skip."""
    return {(e.schema, e.name) for e in excluded}


@dataclass(frozen=True)
class Dumped:
    """The dump uploaded under the backup id this run claimed, and what came with it."""

    keys: BackupKeys
    storage: Storage
    dump: ObjectRecord
    roles_sql: bytes
    inspection: _Inspection


def run_backup(config: BackupConfig) -> Manifest:
    log = get_logger()
    started = datetime.now(timezone.utc)
    started_monotonic = time.monotonic()
    # process start -> here is the interpreter and its imports (bench/ reads the timestamp)
    event(log, "backup starting", version=__version__)
    run = plan_backup(config, started)
    try:
        snapshot, dumped = execute(run)
    finally:
        run.conn.close()
    storage, keys = dumped.storage, dumped.keys
    roles = _put_roles(storage, keys, dumped.roles_sql, run.plan.recipients)
    # claim, dump and roles: the manifest cannot vouch for its own write
    manifest = _manifest(run, snapshot, dumped, roles, datetime.now(timezone.utc).isoformat())
    storage.put_bytes(keys.manifest, manifest.to_json().encode(), "application/json")
    duration = time.monotonic() - started_monotonic
    event(log, "backup complete", uri=config.storage.uri(keys.dump), manifest=config.storage.uri(keys.manifest),
          bytes=manifest.dump.size, sha256=manifest.dump.sha256, seconds=round(duration, 1),
          tables=len(manifest.tables), tenants=len(manifest.tenant_totals()))
    if config.metrics_file:
        # the backup is committed: nothing from here on may turn it into a failed (retried) run
        after_commit("writing --metrics-file", lambda: write_metrics(Path(config.metrics_file), manifest, duration))
    return manifest


def _put_roles(storage: Storage, keys: BackupKeys, roles_sql: bytes, recipients: Recipients) -> ObjectRecord:
    """The roles object (an age file when the backup is encrypted) and its record."""
    if not recipients:
        storage.put_bytes(keys.roles, roles_sql, "application/sql")
        return ObjectRecord(key=keys.roles, size=len(roles_sql), sha256=hashlib.sha256(roles_sql).hexdigest())
    body = encrypt_bytes(roles_sql, recipients)
    storage.put_bytes(keys.roles, body, "application/octet-stream")
    return ObjectRecord(key=keys.roles, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
                        plaintext_size=len(roles_sql), plaintext_sha256=hashlib.sha256(roles_sql).hexdigest())


def _open_storage(config: StorageConfig, keys: BackupKeys) -> tuple[Storage, bool]:
    """The S3 client and the bucket preflight, whose one listing of the id's objects tells
    whether the backup id is already used (then the claim starts at the next second)."""
    storage = Storage(config)
    existing = storage.preflight(list_prefix=keys.id_prefix)
    return storage, bool({keys.dump, keys.roles, keys.manifest, keys.claim} & set(existing))


def _claim_free_id(storage: Storage, keys: BackupKeys, used: bool) -> tuple[BackupKeys, Claim]:
    """Take ``keys``' backup id, or the next free second's: the conditional claim decides
    which of two runs of the same second keeps it; the other goes one second on, so both
    back up, under distinct ids in start order. Nothing is ever overwritten."""
    first = keys
    for _ in range(MAX_ID_SECONDS):
        if not used:
            try:
                claim = storage.claim(keys)
            except IdTaken:
                pass
            else:
                if keys != first:
                    event(get_logger(), f"backup id {first.backup_id} was taken by another run; this backup is "
                          f"{keys.backup_id} (the id is a name: the manifest records the real start)",
                          level=logging.WARNING, backup_id=keys.backup_id, taken=first.backup_id)
                return keys, claim
        keys = keys.next_second()
        used = storage.id_in_use(keys)
    raise same_second_refusal(storage.config.uri(first.dump))


# --------------------------------------------------------------------------- the execution
def execute(run: BackupRun) -> tuple[Snapshot, Dumped]:
    """The snapshot, then the dump streamed to S3."""
    try:
        snapshot = _take_snapshot(run)
        return snapshot, _dump_and_upload(run, snapshot)
    except psycopg.Error as exc:
        raise PreflightError(f"database query failed: {str(exc).strip().splitlines()[0]}") from None


def _take_snapshot(run: BackupRun) -> Snapshot:
    """The snapshot's transaction: what it may read checked, the snapshot exported, the
    sequences read."""
    config, conn = run.config, run.conn
    # in its own statement, before the snapshot's transaction: see completeness
    stats_before = completeness.sample(conn) if config.enable_row_security else None
    conn.autocommit = False
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    info = pgcatalog.server_info(conn)
    # before the claim and pg_dump: a table the role may not read refuses the backup here
    excluded = tableaccess.resolve(conn, config.exclude_tables)
    unreadable = tableaccess.unreadable(conn, excluded)
    if unreadable:
        raise tableaccess.refusal(info.current_user, unreadable)
    if excluded:
        event(get_logger(), "tables left out of the backup, by configuration", tables=[e.qualified for e in excluded])
    if not config.enable_row_security:
        filtered = pgcatalog.rls_filtered_tables(conn)
        if filtered:
            raise PreflightError(
                f"role {info.current_user} would not see every tenant's rows: row-level security "
                f"applies to {', '.join(filtered[:5])}{' ...' if len(filtered) > 5 else ''}",
                hint="back up with a role that has BYPASSRLS (or owns the tables without FORCE), "
                "or set --enable-row-security with a session setting your policies honour",
            )
    snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
    # before pg_dump starts: it reads the sequences later, so the archive holds this
    # state or one further along (sequences are not transactional)
    sequences = pgcatalog.sequence_states(conn, skip=_left_out(excluded))
    return Snapshot(snapshot_id=snapshot_id, info=info, excluded=excluded, sequences=sequences,
                    stats_before=stats_before)


@dataclass
class _Dumping:
    """pg_dump running under the snapshot, and the work started beside it: the snapshot's
    inspection, the S3 preflight and pg_dumpall."""

    dump: DumpStream
    #: the dump's bytes in part buffers (through age, when encrypting)
    parts: PartReader
    encrypted: EncryptedStream | None
    inspection: _Inspection
    inspector: threading.Thread
    #: the S3 client, and whether the preflight found the backup id used
    storage_ready: Future[tuple[Storage, bool]]
    #: pg_dumpall --globals-only
    roles_ready: Future[bytes]

    def inspected(self) -> _Inspection:
        """The inspection, once finished; an error in it raised here. An inspection error
        aborts the snapshot transaction, which can make pg_dump fail to import the
        snapshot: the cause is reported, not the symptom."""
        self.inspector.join()
        error = self.inspection.error
        if error is not None:
            if isinstance(error, psycopg.Error):
                raise DumpError(f"counting rows in the snapshot failed: {str(error).strip().splitlines()[0]}")
            raise error
        return self.inspection

    def stop(self) -> None:
        self.dump.kill()
        if self.encrypted is not None:
            self.encrypted.close()
        self.inspector.join(timeout=30)


def _start_dump(run: BackupRun, snapshot: Snapshot) -> _Dumping:
    """pg_dump --snapshot started, its output read ahead into part buffers; beside it, once
    its output has started, the snapshot inspected and pg_dumpall run, and the bucket checked."""
    config, plan = run.config, run.plan
    options = DumpOptions(compression=plan.compression, snapshot=snapshot.snapshot_id,
                          lock_wait_timeout_s=config.lock_wait_timeout_s,
                          enable_row_security=config.enable_row_security,
                          exclude=tuple(e.pattern for e in snapshot.excluded))
    dump = DumpStream(pg_dump_argv(plan.pg_dump, run.conn_info, plan.session, options), run.conn_info.tool_env())
    inspection = _Inspection()
    inspector = threading.Thread(target=_inspect, args=(run, snapshot, dump.output_started, inspection),
                                 name="inspect", daemon=True)
    inspector.start()
    encrypted = EncryptedStream(dump.readinto, plan.recipients) if plan.recipients else None
    parts = PartReader(plan.upload, fill_with(readinto=encrypted.readinto if encrypted else dump.readinto))
    # the S3 client and preflight (~0.3 s of CPU, most of it imports): after pg_dump's start,
    # so that the connection and the queries before it do not wait for the interpreter lock
    storage_ready = in_background(lambda: _open_storage(config.storage, plan.keys), "s3-preflight")

    def dump_roles() -> bytes:
        dump.output_started.wait()
        return dump_globals(plan.pg_dumpall, run.conn_info, plan.session)

    return _Dumping(dump=dump, parts=parts, encrypted=encrypted, inspection=inspection, inspector=inspector,
                    storage_ready=storage_ready, roles_ready=in_background(dump_roles, "pg_dumpall"))


def _inspect(run: BackupRun, snapshot: Snapshot, output_started: threading.Event, inspection: _Inspection) -> None:
    """Count and fingerprint the snapshot into ``inspection`` (an error is kept there for
    the main thread), after pg_dump's catalog queries: they delay its first byte."""
    conn = run.conn
    try:
        output_started.wait()
        inspection.counts = pgcatalog.row_counts(conn, run.config.tenant_column, skip=snapshot.left_out)
        inspection.fingerprint = tableaccess.without_excluded(pgcatalog.schema_fingerprint(conn), snapshot.excluded)
        inspection.extensions = pgcatalog.extensions(conn)
        inspection.roles = pgroles.referenced_roles(conn)
        seeds = {name for names in inspection.roles.values() for name in names}
        inspection.database = dbstate.capture(conn, seeds)
        inspection.fingerprint.update(inspection.database.fingerprint())
    except BaseException as exc:  # handed to the main thread
        inspection.error = exc


def _dump_and_upload(run: BackupRun, snapshot: Snapshot) -> Dumped:
    """pg_dump --snapshot streamed into the upload, the snapshot counted meanwhile; the
    first write (the claim) once the bucket and the roles are ready."""
    config, plan = run.config, run.plan
    dumping = _start_dump(run, snapshot)
    try:
        storage, id_used = dumping.storage_ready.result()
        event(get_logger(), "preflight: bucket reachable", bucket=config.storage.bucket, prefix=config.storage.prefix)
        roles_sql = dumping.roles_ready.result()  # if pg_dumpall failed, nothing is written
        # the first write: of two runs in the same second, one keeps the id, the other takes the next second
        keys, claim = _claim_free_id(storage, plan.keys, id_used)

        def before_complete() -> None:
            inspection = dumping.inspected()
            dumping.dump.finish()
            if config.enable_row_security and snapshot.stats_before is not None:
                # before completing: a filtered dump must not be left behind as an object
                completeness.require_every_row(inspection.counts, completeness.filtered_tables(run.conn),
                                               snapshot.stats_before, lambda: completeness.sample(run.conn))
            storage.check_claim(claim, keys.dump)

        progress = Progress("uploading", PROGRESS_INTERVAL_S)
        uploader = StreamUploader(storage.client, config.storage, keys.dump, plan.upload,
                                  progress=lambda total: progress.update(bytes=total), encryption=storage.encryption)
        result = uploader.upload(parts=dumping.parts, before_complete=before_complete)
    except BaseException:
        dumping.parts.close()
        if dumping.inspector.is_alive():
            run.conn.cancel_safe()
        raise
    finally:
        dumping.stop()
    _end_snapshot(run.conn)
    return Dumped(keys=keys, storage=storage, dump=_dump_record(result, dumping.encrypted, plan.recipients),
                  roles_sql=roles_sql, inspection=dumping.inspection)


def _dump_record(result: UploadResult, encrypted: EncryptedStream | None, recipients: Recipients) -> ObjectRecord:
    """The dump object as uploaded (logged): with its plaintext's size and SHA-256 when encrypted."""
    event(get_logger(), "dump uploaded", key=result.key, bytes=result.size, parts=result.parts,
          **({"plaintext_bytes": encrypted.plaintext.size, "encrypted_to": len(recipients.strings)}
             if encrypted else {}))
    return ObjectRecord(key=result.key, size=result.size, sha256=result.sha256, parts=result.parts,
                        plaintext_size=encrypted.plaintext.size if encrypted else None,
                        plaintext_sha256=encrypted.plaintext.sha256 if encrypted else None)


def _manifest(run: BackupRun, snapshot: Snapshot, dumped: Dumped, roles: ObjectRecord, finished_at: str) -> Manifest:
    """The manifest, assembled once from what the run produced."""
    config, plan, info, inspection = run.config, run.plan, snapshot.info, dumped.inspection
    return Manifest(
        backup_id=dumped.keys.backup_id,
        started_at=run.started.isoformat(),
        finished_at=finished_at,
        snapshot_time=info.snapshot_time,
        dump=dumped.dump,
        roles=roles,
        source=SourceRecord(
            database=info.database,
            host=run.conn_info.host,
            server_version=info.version,
            server_major=info.major,
            system_identifier=info.system_identifier,
            is_standby=info.in_recovery,
            replay_timestamp=info.replay_timestamp,
            database_size=info.database_size,
            backup_role=info.current_user,
        ),
        client=ClientRecord(
            pg_dump_version=plan.pg_dump.version,
            pg_dump_major=plan.pg_dump.major,
            compression=str(plan.compression),
            compression_note=plan.compression_note,
            row_security=config.enable_row_security,
        ),
        tenant_column=config.tenant_column,
        tables=[TableRecord(c.schema, c.name, c.rows, c.tenants) for c in inspection.counts],
        schema_fingerprint=inspection.fingerprint,
        schema_fingerprint_sha256=pgcatalog.fingerprint_digest(inspection.fingerprint),
        extensions=inspection.extensions,
        referenced_roles=inspection.roles,
        database=inspection.database,
        storage={**_storage_record(config.storage), "encryption_confirmed": dumped.storage.encryption.record()},
        tool_version=__version__,
        sequences=snapshot.sequences,
        inspection_settings=dict(INSPECTION_SETTINGS),
        excluded_tables=[e.qualified for e in snapshot.excluded],
        encryption=EncryptionRecord(format="age", recipients=list(plan.recipients.strings)) if plan.recipients else None,
    )


def _storage_record(storage: StorageConfig) -> dict[str, object]:
    return {"bucket": storage.bucket, "region": storage.region, "sse": storage.sse,
            "kms_key_id": storage.kms_key_id, "storage_class": storage.storage_class}


def _end_snapshot(conn: psycopg.Connection) -> None:
    """Roll back the snapshot transaction, best effort: the dump is uploaded and counted,
    so a connection a middlebox dropped while it idled must not fail the backup."""
    try:
        conn.rollback()
    except psycopg.Error as exc:
        event(get_logger(), "the snapshot connection was lost after the dump was uploaded; nothing is lost "
              "(its transaction was read-only)", level=logging.WARNING, error=str(exc).strip().splitlines()[0])


def write_metrics(path: Path, manifest: Manifest, duration: float) -> None:
    """Prometheus textfile-collector metrics, replaced atomically."""
    finished = datetime.fromisoformat(manifest.finished_at).timestamp()
    text = (
        "# HELP agent_bom_backup_last_success_timestamp_seconds Time the last successful backup finished.\n"
        "# TYPE agent_bom_backup_last_success_timestamp_seconds gauge\n"
        f"agent_bom_backup_last_success_timestamp_seconds {finished:.0f}\n"
        "# HELP agent_bom_backup_last_size_bytes Size of the last successful dump object.\n"
        "# TYPE agent_bom_backup_last_size_bytes gauge\n"
        f"agent_bom_backup_last_size_bytes {manifest.dump.size}\n"
        "# HELP agent_bom_backup_last_duration_seconds Duration of the last successful backup.\n"
        "# TYPE agent_bom_backup_last_duration_seconds gauge\n"
        f"agent_bom_backup_last_duration_seconds {duration:.3f}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

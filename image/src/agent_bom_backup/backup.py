"""The backup operation run by the CronJob: a plan, then its execution.

**plan** (nothing is written): the upload plan within the memory budget (a warning when
the budget keeps dumps below S3's 5 TiB, a refusal when it cannot hold one part); one database
connection, which learns the server's major and later holds the snapshot; the pg_dump
for that major and its compression (the PostgreSQL clients are found in a background
thread meanwhile). The result is a :class:`BackupPlan`, logged as ``backup plan``.

**execute**: the snapshot is taken (RLS check, ``pg_export_snapshot()``, sequence states)
and ``pg_dump --snapshot`` starts; its output is read ahead into part buffers. Then, in
background threads: the S3 client is made and the bucket checked (HeadBucket, its region,
one listing of the new backup id's objects: an id already used is refused there); once
pg_dump's output has started (its catalog queries come first), ``pg_dumpall
--globals-only`` (the roles, kept in memory) runs and the same snapshot is counted and
fingerprinted. Once the bucket has answered and the roles are in, the backup id is
claimed (conditional write of ``<id>.claim``, the first write) and the parts upload;
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
from functools import partial
from pathlib import Path

import psycopg

from . import __version__, pgcatalog
from .agecrypt import EncryptedStream, Recipients, encrypt_bytes
from .background import in_background
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
    backup_id_for,
)
from .parts import DEFAULT_CONCURRENCY, PartReader, PartSchedule, UploadPlan, fill_with, plan_upload
from .pgclients import AUTO_PREFERENCE, Compression, PgClient, choose_compression, discover, require_tls, select_dump_client
from .pgconn import INSPECTION_SETTINGS, ConnInfo, SessionSettings, connect_learning_major
from .resources import MemoryBudget, memory_budget
from .storage import Storage, StorageConfig, StreamUploader, UploadResult, same_second_refusal

#: seconds between "uploading" progress lines
PROGRESS_INTERVAL_S = 15


@dataclass(frozen=True)
class BackupConfig:
    database_url: str = field(repr=False)
    storage: StorageConfig
    compression: str = "auto"
    compression_fallback: str | None = None
    tenant_column: str = "team_id"
    lock_wait_timeout_s: int = 300
    enable_row_security: bool = False
    session_settings: tuple[tuple[str, str], ...] = ()
    part_schedule: PartSchedule = PartSchedule()
    upload_concurrency: int = DEFAULT_CONCURRENCY
    memory_budget: MemoryBudget = field(default_factory=memory_budget)
    pg_bin_dirs: tuple[str, ...] = ()
    pg_bin_dirs_only: bool = False
    metrics_file: str | None = None
    #: age recipients the dump and roles objects are encrypted to (empty: not encrypted)
    encrypt_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupPlan:
    """What this run does, decided before anything is written."""

    keys: BackupKeys
    server: str
    server_major: int
    pg_dump: PgClient
    pg_dumpall: PgClient
    compression: Compression
    compression_note: str
    #: the settings of every connection the tools open (the snapshot's adds the inspection settings)
    session: SessionSettings
    upload: UploadPlan
    #: client-side encryption (empty: none)
    recipients: Recipients = Recipients((), ())

    def to_log(self) -> dict[str, object]:
        return {"backup_id": self.keys.backup_id, "server": self.server, "server_major": self.server_major,
                "pg_dump": self.pg_dump.version, "pg_dumpall": self.pg_dumpall.version,
                "compression": str(self.compression), "encrypt_to": list(self.recipients.strings),
                **self.upload.to_log()}


@dataclass
class _Inspection:
    """Results gathered inside the snapshot by a helper thread."""

    counts: list[pgcatalog.TableCount] = field(default_factory=list)
    fingerprint: dict[str, list[str]] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass
class BackupRun:
    """One run: its configuration and plan, the connection that holds the snapshot, the
    work started in the background, and what the execution produced so far."""

    config: BackupConfig
    plan: BackupPlan
    conn_info: ConnInfo
    conn: psycopg.Connection
    started: datetime
    #: the S3 client and bucket preflight, answered in the background once pg_dump started
    storage_ready: Future[Storage] | None = None
    #: pg_dumpall --globals-only, run in the background once pg_dump's output started
    roles_ready: Future[bytes] | None = None
    info: pgcatalog.ServerInfo | None = None
    sequences: list[SequenceRecord] | None = None
    inspection: _Inspection = field(default_factory=_Inspection)

    @property
    def storage(self) -> Storage:
        assert self.storage_ready is not None, "the S3 preflight starts with pg_dump"
        return self.storage_ready.result()


def run_backup(config: BackupConfig) -> Manifest:
    log = get_logger()
    started = datetime.now(timezone.utc)
    started_monotonic = time.monotonic()
    # process start -> here is the interpreter and its imports (bench/ reads the timestamp)
    event(log, "backup starting", version=__version__)
    run = plan_backup(config, started)
    try:
        manifest = execute(run)
    finally:
        run.conn.close()
    storage, keys = run.storage, run.plan.keys
    roles_sql = run.roles_ready.result() if run.roles_ready else b""
    manifest.roles = _put_roles(storage, keys, roles_sql, run.plan.recipients)
    manifest.finished_at = datetime.now(timezone.utc).isoformat()
    # claim, dump and roles: the manifest cannot vouch for its own write
    manifest.storage["encryption_confirmed"] = storage.encryption.record()
    storage.put_bytes(keys.manifest, manifest.to_json().encode(), "application/json")
    duration = time.monotonic() - started_monotonic
    event(log, "backup complete", uri=config.storage.uri(keys.dump), manifest=config.storage.uri(keys.manifest),
          bytes=manifest.dump.size, sha256=manifest.dump.sha256, seconds=round(duration, 1),
          tables=len(manifest.tables), tenants=len(manifest.tenant_totals()))
    if config.metrics_file:
        write_metrics(Path(config.metrics_file), manifest, duration)
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


# --------------------------------------------------------------------------- the plan
def plan_backup(config: BackupConfig, started: datetime) -> BackupRun:
    """Every check that writes nothing and needs neither S3 (asked once pg_dump runs) nor a
    snapshot; the connection it opens becomes the snapshot's."""
    log = get_logger()
    conn_info = ConnInfo.parse(config.database_url, what="AGENT_BOM_POSTGRES_URL")
    recipients = Recipients.parse(config.encrypt_to)  # a malformed one: exit 3 before anything
    upload = plan_upload(config.part_schedule, config.upload_concurrency, config.memory_budget)
    ceiling = upload.ceiling_warning()
    if ceiling:
        event(log, ceiling[0], level=logging.WARNING, hint=ceiling[1], max_dump_size=upload.max_dump_size)
    keys = config.storage.keys(backup_id_for(started))
    config.storage.validate()
    clients_ready = in_background(lambda: _discover_clients(config, conn_info), "pg-clients")
    base = SessionSettings(lock_timeout_ms=config.lock_wait_timeout_s * 1000, row_security=config.enable_row_security,
                           extra=config.session_settings)
    # the inspection session pins search_path, TimeZone and the like, so the fingerprint
    # and tenant keys do not depend on the backup role's or the database's own settings
    conn, server_major = connect_learning_major(conn_info, base.inspecting())
    try:
        session = SessionSettings(server_major=server_major, lock_timeout_ms=base.lock_timeout_ms,
                                  row_security=base.row_security, extra=base.extra)
        clients = clients_ready.result()
        pg_dump = select_dump_client(clients, server_major, conn_info.sslmode)
        _warn_if_unencrypted(pg_dump, conn_info)
        compression, compression_note = choose_compression(pg_dump, config.compression, config.compression_fallback)
        pg_dumpall = _client_with(require_tls(clients, conn_info.sslmode), "pg_dumpall", server_major) or pg_dump
    except BaseException:
        conn.close()
        raise
    plan = BackupPlan(keys=keys, server=conn_info.display(), server_major=server_major, pg_dump=pg_dump,
                      pg_dumpall=pg_dumpall, compression=compression, compression_note=compression_note,
                      session=session, upload=upload, recipients=recipients)
    event(log, "preflight: database reachable", server=plan.server, server_major=server_major,
          pg_dump=pg_dump.version, compression=str(compression))
    event(log, "backup plan", **plan.to_log())
    return BackupRun(config=config, plan=plan, conn_info=conn_info, conn=conn, started=started)


def _open_storage(config: StorageConfig, keys: BackupKeys) -> Storage:
    """The S3 client and the bucket preflight; refuses a backup id whose objects exist."""
    storage = Storage(config)
    existing = storage.preflight(list_prefix=keys.id_prefix)
    if {keys.dump, keys.roles, keys.manifest, keys.claim} & set(existing):
        raise same_second_refusal(config.uri(keys.dump))
    return storage


def _discover_clients(config: BackupConfig, conn_info: ConnInfo) -> list[PgClient]:
    """The installed clients, with the answers the plan will ask of them (TLS, the
    compression algorithm) probed here, off the start-up's critical path."""
    clients = discover(config.pg_bin_dirs, config.pg_bin_dirs_only)
    wanted = config.compression.strip().lower()
    algorithms = {a.algorithm for a in AUTO_PREFERENCE} if wanted == "auto" else {wanted.partition(":")[0]}
    probes = [partial(client.supports_compression, a) for client in clients for a in algorithms if a in ("lz4", "zstd")]
    if conn_info.over_tcp:
        probes += [client.supports_ssl for client in clients]
    for answer in [in_background(probe, "pg-client-probe") for probe in probes]:
        answer.result()
    return clients


# --------------------------------------------------------------------------- the execution
def execute(run: BackupRun) -> Manifest:
    """The snapshot, then the dump streamed to S3."""
    config, conn = run.config, run.conn
    try:
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        run.info = info = pgcatalog.server_info(conn)
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
        run.sequences = pgcatalog.sequence_states(conn)
        manifest = _dump_and_upload(run, snapshot_id)
    except psycopg.Error as exc:
        raise PreflightError(f"database query failed: {str(exc).strip().splitlines()[0]}") from None
    manifest.sequences = run.sequences
    manifest.inspection_settings = dict(INSPECTION_SETTINGS)
    return manifest


def _dump_and_upload(run: BackupRun, snapshot_id: str) -> Manifest:
    """pg_dump --snapshot streamed into the upload, the snapshot counted meanwhile; the
    first write (the claim) once the bucket and the roles are ready."""
    log = get_logger()
    config, plan, conn = run.config, run.plan, run.conn
    options = DumpOptions(
        compression=plan.compression,
        snapshot=snapshot_id,
        lock_wait_timeout_s=config.lock_wait_timeout_s,
        enable_row_security=config.enable_row_security,
    )
    inspection = run.inspection

    def gather() -> None:
        try:
            dump.output_started.wait()  # pg_dump's catalog queries first: they delay its first byte
            inspection.counts = pgcatalog.row_counts(conn, config.tenant_column)
            inspection.fingerprint = pgcatalog.schema_fingerprint(conn)
            inspection.extensions = pgcatalog.extensions(conn)
            inspection.roles = pgcatalog.referenced_roles(conn)
        except BaseException as exc:  # handed to the main thread
            inspection.error = exc

    dump = DumpStream(pg_dump_argv(plan.pg_dump, run.conn_info, plan.session, options), run.conn_info.tool_env())
    inspector = threading.Thread(target=gather, name="inspect", daemon=True)
    inspector.start()
    # the dump flows into part buffers (through age, when encrypting) while the bucket
    # answers and the id is claimed
    encrypted = EncryptedStream(dump.readinto, plan.recipients) if plan.recipients else None
    parts = PartReader(plan.upload, fill_with(readinto=encrypted.readinto if encrypted else dump.readinto))
    # the S3 client and preflight (~0.3 s of CPU, most of it imports): after pg_dump's start,
    # so that the connection and the queries before it do not wait for the interpreter lock
    run.storage_ready = in_background(lambda: _open_storage(config.storage, plan.keys), "s3-preflight")

    def dump_roles() -> bytes:
        dump.output_started.wait()
        return dump_globals(plan.pg_dumpall, run.conn_info, plan.session)

    run.roles_ready = in_background(dump_roles, "pg_dumpall")

    def before_complete() -> None:
        # an inspection error aborts the snapshot transaction, which can make pg_dump fail
        # to import the snapshot: report the cause, not the symptom
        inspector.join()
        if inspection.error is not None:
            error = inspection.error
            if isinstance(error, psycopg.Error):
                raise DumpError(f"counting rows in the snapshot failed: {str(error).strip().splitlines()[0]}")
            raise error
        dump.finish()
        if config.enable_row_security:
            # before completing: a filtered dump must not be left behind as an object
            _verify_bypass_sees_all_rows(conn, inspection.counts)
        storage.check_claim(claim, plan.keys.dump)

    try:
        storage = run.storage
        event(log, "preflight: bucket reachable", bucket=config.storage.bucket, prefix=config.storage.prefix)
        assert run.roles_ready is not None
        run.roles_ready.result()  # if pg_dumpall failed, nothing is written
        # the first write: of two runs in the same second, one goes on
        claim = storage.claim(plan.keys)
        progress = Progress("uploading", PROGRESS_INTERVAL_S)
        uploader = StreamUploader(
            storage.client, config.storage, plan.keys.dump, plan.upload,
            progress=lambda total: progress.update(bytes=total), encryption=storage.encryption,
        )
        result = uploader.upload(parts=parts, before_complete=before_complete)
    except BaseException:
        parts.close()
        if inspector.is_alive():
            conn.cancel_safe()
        raise
    finally:
        dump.kill()
        if encrypted is not None:
            encrypted.close()
        inspector.join(timeout=30)
    _end_snapshot(conn)
    event(log, "dump uploaded", key=plan.keys.dump, bytes=result.size, parts=result.parts,
          **({"plaintext_bytes": encrypted.plaintext.size, "encrypted_to": len(plan.recipients.strings)}
             if encrypted else {}))
    manifest = _manifest(run, result)
    if encrypted is not None:
        manifest.dump.plaintext_size = encrypted.plaintext.size
        manifest.dump.plaintext_sha256 = encrypted.plaintext.sha256
        manifest.encryption = EncryptionRecord(format="age", recipients=list(plan.recipients.strings))
    return manifest


def _manifest(run: BackupRun, result: UploadResult) -> Manifest:
    config, plan, info, inspection = run.config, run.plan, run.info, run.inspection
    assert info is not None
    return Manifest(
        backup_id=plan.keys.backup_id,
        started_at=run.started.isoformat(),
        finished_at="",
        snapshot_time=info.snapshot_time,
        dump=ObjectRecord(key=result.key, size=result.size, sha256=result.sha256, parts=result.parts),
        roles=None,
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
        storage={
            "bucket": config.storage.bucket,
            "region": config.storage.region,
            "sse": config.storage.sse,
            "kms_key_id": config.storage.kms_key_id,
            "storage_class": config.storage.storage_class,
        },
        tool_version=__version__,
    )


def _end_snapshot(conn: psycopg.Connection) -> None:
    """Roll back the snapshot transaction, best effort: the dump is uploaded and counted,
    so a connection a middlebox dropped while it idled must not fail the backup."""
    try:
        conn.rollback()
    except psycopg.Error as exc:
        event(get_logger(), "the snapshot connection was lost after the dump was uploaded; nothing is lost "
              "(its transaction was read-only)", level=logging.WARNING, error=str(exc).strip().splitlines()[0])


def _verify_bypass_sees_all_rows(conn: psycopg.Connection, counts: list[pgcatalog.TableCount]) -> None:
    """With --enable-row-security, rows counted under the policies must not fall short of
    the live-row estimate: a filtered role sees a fraction of the rows. The estimate is the
    larger of the statistics' count (reset by a crash or pg_stat_reset) and
    pg_class.reltuples (kept in the catalog by VACUUM/ANALYZE)."""
    estimates = dict(
        ((schema, name), int(n)) for schema, name, n in conn.execute(
            "SELECT s.schemaname, s.relname, GREATEST(s.n_live_tup, c.reltuples::bigint) "
            "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid").fetchall()
    )
    short = [
        f"{c.schema}.{c.name} ({c.rows} of ~{estimates[(c.schema, c.name)]})"
        for c in counts
        if estimates.get((c.schema, c.name), 0) > 0 and c.rows < 0.9 * estimates[(c.schema, c.name)] - 10
    ]
    if short:
        raise PreflightError(
            f"row-level security filtered the backup: {', '.join(short[:5])}",
            hint="the configured bypass does not let this role see every tenant's rows",
        )


def _warn_if_unencrypted(client: PgClient, conn_info: ConnInfo) -> None:
    """libpq's default sslmode=prefer silently falls back to plain TCP in a client built
    without TLS: say so, and how to require it."""
    if conn_info.over_tcp and (conn_info.sslmode or "prefer") in ("prefer", "allow") and not client.supports_ssl():
        event(get_logger(), f"pg_dump {client.major} has no TLS support: its connection is unencrypted",
              level=logging.WARNING, hint="set sslmode=require (or verify-full) to refuse unencrypted connections")


def _client_with(clients: list[PgClient], tool: str, server_major: int) -> PgClient | None:
    usable = [c for c in clients if c.major >= server_major and c.has(tool)]
    return min(usable, key=lambda c: c.major) if usable else None


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

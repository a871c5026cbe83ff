"""The backup operation run by the CronJob.

preflight (connect, server major, client choice, bucket, region, key collision) →
roles (pg_dumpall --globals-only, kept in memory) → RLS check → claim the backup id
(conditional write of ``<id>.claim``) → export a snapshot → pg_dump --snapshot streamed
into a multipart upload while the same snapshot is counted and fingerprinted → the claim
checked again → dump completed → roles object → manifest, written last. Every write's
requested encryption is confirmed from the store's answers; the manifest records it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from . import __version__, pgcatalog
from .dump import DumpOptions, DumpStream, dump_globals, pg_dump_argv
from .errors import DumpError, PreflightError
from .log import event, get_logger
from .manifest import ClientRecord, Manifest, ObjectRecord, SourceRecord, TableRecord, backup_id_for
from .pgclients import PgClient, choose_compression, discover, require_tls, select_dump_client
from .pgconn import INSPECTION_SETTINGS, ConnInfo, SessionSettings, probe_server_major
from .storage import (
    DEFAULT_CONCURRENCY,
    Claim,
    PartSchedule,
    Storage,
    StorageConfig,
    StreamUploader,
    same_second_refusal,
)


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
    pg_bin_dirs: tuple[str, ...] = ()
    pg_bin_dirs_only: bool = False
    metrics_file: str | None = None


@dataclass
class _Inspection:
    """Results gathered inside the snapshot by a helper thread."""

    counts: list[pgcatalog.TableCount] = field(default_factory=list)
    fingerprint: dict[str, list[str]] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    error: BaseException | None = None


def run_backup(config: BackupConfig) -> Manifest:
    log = get_logger()
    started = datetime.now(timezone.utc)
    started_monotonic = time.monotonic()
    # process start -> here is the interpreter and its imports (bench/ reads the timestamp)
    event(log, "backup starting", version=__version__)
    conn_info = ConnInfo.parse(config.database_url, what="AGENT_BOM_POSTGRES_URL")
    config.part_schedule.validate()

    server_major = probe_server_major(conn_info)
    session = SessionSettings(
        server_major=server_major,
        lock_timeout_ms=config.lock_wait_timeout_s * 1000,
        row_security=config.enable_row_security,
        extra=config.session_settings,
    )
    clients = discover(config.pg_bin_dirs, config.pg_bin_dirs_only)
    client = select_dump_client(clients, server_major, conn_info.sslmode)
    _warn_if_unencrypted(client, conn_info)
    compression, compression_note = choose_compression(client, config.compression, config.compression_fallback)
    event(log, "preflight: database reachable", server=conn_info.display(), server_major=server_major,
          pg_dump=client.version, compression=str(compression))

    storage = Storage(config.storage)
    storage.preflight()
    backup_id = backup_id_for(started)
    keys = config.storage.keys(backup_id)
    if storage.exists(keys.dump) or storage.exists(keys.manifest) or storage.exists(keys.claim):
        raise same_second_refusal(config.storage.uri(keys.dump))
    event(log, "preflight: bucket reachable", bucket=config.storage.bucket, prefix=config.storage.prefix)
    # the roles first: if pg_dumpall fails, no dump object is left without its manifest
    roles_client = _client_with(require_tls(clients, conn_info.sslmode), "pg_dumpall", server_major) or client
    roles_sql = dump_globals(roles_client, conn_info, session)

    # the inspection session pins search_path, TimeZone and the like, so the fingerprint
    # and tenant keys do not depend on the backup role's or the database's own settings
    snapshot_conn = conn_info.connect(session.inspecting(), autocommit=False)
    try:
        snapshot_conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snapshot_conn.read_only = True
        info = pgcatalog.server_info(snapshot_conn)
        if not config.enable_row_security:
            filtered = pgcatalog.rls_filtered_tables(snapshot_conn)
            if filtered:
                raise PreflightError(
                    f"role {info.current_user} would not see every tenant's rows: row-level security "
                    f"applies to {', '.join(filtered[:5])}{' ...' if len(filtered) > 5 else ''}",
                    hint="back up with a role that has BYPASSRLS (or owns the tables without FORCE), "
                    "or set --enable-row-security with a session setting your policies honour",
                )
        # the last step before anything is uploaded: of two runs in the same second, one goes on
        claim = storage.claim(keys)
        snapshot_id = snapshot_conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        # before pg_dump starts: it reads the sequences later, so the archive holds this
        # state or one further along (sequences are not transactional)
        sequences = pgcatalog.sequence_states(snapshot_conn)
        manifest = _dump_and_upload(
            config, conn_info, session, client, compression, storage, keys.dump, snapshot_id, snapshot_conn, info,
            started, compression_note, claim,
        )
    except psycopg.Error as exc:
        raise PreflightError(f"database query failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        snapshot_conn.close()

    manifest.sequences = sequences
    manifest.inspection_settings = dict(INSPECTION_SETTINGS)
    storage.put_bytes(keys.roles, roles_sql, "application/sql")
    manifest.roles = ObjectRecord(key=keys.roles, size=len(roles_sql), sha256=hashlib.sha256(roles_sql).hexdigest())
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


def _dump_and_upload(
    config: BackupConfig,
    conn_info: ConnInfo,
    session: SessionSettings,
    client: PgClient,
    compression,  # type: ignore[no-untyped-def]
    storage: Storage,
    dump_key: str,
    snapshot_id: str,
    snapshot_conn: psycopg.Connection,
    info: pgcatalog.ServerInfo,
    started: datetime,
    compression_note: str,
    claim: Claim,
) -> Manifest:
    log = get_logger()
    options = DumpOptions(
        compression=compression,
        snapshot=snapshot_id,
        lock_wait_timeout_s=config.lock_wait_timeout_s,
        enable_row_security=config.enable_row_security,
    )
    inspection = _Inspection()

    def gather() -> None:
        try:
            inspection.counts = pgcatalog.row_counts(snapshot_conn, config.tenant_column)
            inspection.fingerprint = pgcatalog.schema_fingerprint(snapshot_conn)
            inspection.extensions = pgcatalog.extensions(snapshot_conn)
            inspection.roles = pgcatalog.referenced_roles(snapshot_conn)
        except BaseException as exc:  # handed to the main thread
            inspection.error = exc

    dump = DumpStream(pg_dump_argv(client, conn_info, session, options), conn_info.tool_env())
    _log_first_output(dump)
    inspector = threading.Thread(target=gather, name="inspect", daemon=True)
    inspector.start()

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
            _verify_bypass_sees_all_rows(snapshot_conn, inspection.counts)
        storage.check_claim(claim, dump_key)

    uploader = StreamUploader(
        storage.client, config.storage, dump_key, config.part_schedule, config.upload_concurrency,
        progress=_progress_logger(), encryption=storage.encryption,
    )
    try:
        result = uploader.upload(dump.read, before_complete=before_complete)
    except BaseException:
        if inspector.is_alive():
            snapshot_conn.cancel_safe()
        raise
    finally:
        dump.kill()
        inspector.join(timeout=30)
    _end_snapshot(snapshot_conn)
    event(log, "dump uploaded", key=dump_key, bytes=result.size, parts=result.parts)
    return Manifest(
        backup_id=dump_key.rsplit("/", 1)[-1].removesuffix(".dump"),
        started_at=started.isoformat(),
        finished_at="",
        snapshot_time=info.snapshot_time,
        dump=ObjectRecord(key=result.key, size=result.size, sha256=result.sha256, parts=result.parts),
        roles=None,
        source=SourceRecord(
            database=info.database,
            host=conn_info.host,
            server_version=info.version,
            server_major=info.major,
            system_identifier=info.system_identifier,
            is_standby=info.in_recovery,
            replay_timestamp=info.replay_timestamp,
            database_size=info.database_size,
            backup_role=info.current_user,
        ),
        client=ClientRecord(
            pg_dump_version=client.version,
            pg_dump_major=client.major,
            compression=str(compression),
            compression_note=compression_note,
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


def _log_first_output(dump: DumpStream) -> None:
    """Log when pg_dump's first bytes are ready to read: the end of the fixed start-up cost
    (process start to here; bench/ reads it from the log) and, when pg_dump waits for a
    lock, the line that does not come. Waits on the pipe without reading from it."""
    log = get_logger()
    stdout = dump.process.stdout
    assert stdout is not None
    poller = select.poll()
    poller.register(stdout.fileno(), select.POLLIN)

    def wait() -> None:
        try:
            ready = poller.poll()
        except (OSError, ValueError):
            return
        # POLLHUP alone: pg_dump ended without output (its error is reported elsewhere)
        if any(mask & select.POLLIN for _, mask in ready):
            event(log, "pg_dump output started")

    threading.Thread(target=wait, name="first-output", daemon=True).start()


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
              level=30, hint="set sslmode=require (or verify-full) to refuse unencrypted connections")


def _client_with(clients: list[PgClient], tool: str, server_major: int) -> PgClient | None:
    usable = [c for c in clients if c.major >= server_major and c.has(tool)]
    return min(usable, key=lambda c: c.major) if usable else None


def _progress_logger():  # type: ignore[no-untyped-def]
    log = get_logger()
    last = [time.monotonic()]

    def progress(total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 15:
            last[0] = now
            event(log, "uploading", bytes=total)

    return progress


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

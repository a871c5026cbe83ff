"""The backup's plan: every check that writes nothing (:func:`plan_backup`).

The upload plan within the memory budget (a warning when the budget keeps dumps below S3's
5 TiB, a refusal when it cannot hold one part); one database connection, which learns the
server's major and later holds the snapshot; the pg_dump for that major and its
compression (the PostgreSQL clients are found in a background thread meanwhile). The
result is a :class:`BackupPlan`, logged as ``backup plan``, in the :class:`BackupRun` that
:mod:`backup` executes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import psycopg

from . import tableaccess
from .agecrypt import Recipients
from .background import in_background
from .log import event, get_logger
from .manifest import BackupKeys, backup_id_for
from .parts import DEFAULT_CONCURRENCY, PartSchedule, UploadPlan, plan_upload
from .pgclients import AUTO_PREFERENCE, Compression, PgClient, choose_compression, discover, require_tls, select_dump_client
from .pgconn import ConnInfo, SessionSettings, connect_learning_major
from .resources import MemoryBudget, memory_budget
from .storage import StorageConfig


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
    #: ``SCHEMA.TABLE`` names left out of the backup whole (--exclude-table)
    exclude_tables: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class BackupRun:
    """One run: its configuration and plan, and the connection that holds the snapshot."""

    config: BackupConfig
    plan: BackupPlan
    conn_info: ConnInfo
    conn: psycopg.Connection
    started: datetime


# --------------------------------------------------------------------------- the plan
def plan_backup(config: BackupConfig, started: datetime) -> BackupRun:
    """Every check that writes nothing and needs neither S3 (asked once pg_dump runs) nor a
    snapshot; the connection it opens becomes the snapshot's."""
    log = get_logger()
    conn_info = ConnInfo.parse(config.database_url, what="AGENT_BOM_POSTGRES_URL")
    for name in config.exclude_tables:
        tableaccess.parse_name(name)  # a malformed name: exit 3 before connecting
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


def _warn_if_unencrypted(client: PgClient, conn_info: ConnInfo) -> None:
    """libpq's default sslmode=prefer silently falls back to plain TCP in a client built
    without TLS: say so, and how to require it."""
    if conn_info.over_tcp and (conn_info.sslmode or "prefer") in ("prefer", "allow") and not client.supports_ssl():
        event(get_logger(), f"pg_dump {client.major} has no TLS support: its connection is unencrypted",
              level=logging.WARNING, hint="set sslmode=require (or verify-full) to refuse unencrypted connections")


def _client_with(clients: list[PgClient], tool: str, server_major: int) -> PgClient | None:
    usable = [c for c in clients if c.major >= server_major and c.has(tool)]
    return min(usable, key=lambda c: c.major) if usable else None

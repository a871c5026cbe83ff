"""Restore a backup into a PostgreSQL database an on-call operator can trust.

Nothing touches the target before every check has passed: the manifest exists and
names this dump, the dump's size and SHA-256 match, a pg_restore can read it, the
target is empty (or --clean with its name confirmed), it is not the live source
(or an approval id is given), every role the dump names and every extension exists.
Then: safety snapshot (with --clean), missing roles, pg_restore, verification.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from . import pgcatalog
from .dump import DumpOptions, dump_to_file
from .errors import BackupError, ConfigError, PreflightError, RefusedError, RestoreError, StorageError, VerifyError
from .log import event, get_logger, redact_url
from .manifest import BackupKeys, Manifest
from .pgclients import Compression, PgClient, discover, select_dump_client, select_restore_client
from .pgconn import ConnInfo, SessionSettings, probe_server_major
from .report import RestoreReport
from .roles import create_missing_roles, parse_globals
from .storage import Storage, StorageConfig, parse_s3_uri
from .verify import verify_database

TRANSACTION_TIMEOUT_ERROR = 'unrecognized configuration parameter "transaction_timeout"'
ARCHIVED_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


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
    jobs: int = 2
    dry_run: bool = False
    safety_backup: bool = True
    safety_backup_dir: str | None = None
    scratch_dir: str | None = None
    pg_bin_dirs: tuple[str, ...] = ()
    pg_bin_dirs_only: bool = False
    lock_wait_timeout_s: int = 300


def resolve_backup(storage: Storage, source: str) -> BackupKeys:
    """``latest``, ``s3://bucket/prefix/`` or an object URI -> the backup's keys."""
    if source == "latest":
        return newest_complete(storage, storage.config.prefix)
    _, key = parse_s3_uri(source)
    if not key or key.endswith("/"):
        return newest_complete(storage, key)
    keys = BackupKeys.from_any_key(key)
    if keys is None:
        bare = BackupKeys.from_any_key(key + ".dump")
        if bare is None:
            raise ConfigError(
                f"{redact_url(source)} does not name an agent-bom backup",
                hint="expected .../agent-bom-YYYYMMDDTHHMMSSZ.dump; run `agent-bom-backup list`",
            )
        keys = bare
    return keys


def newest_complete(storage: Storage, prefix: str) -> BackupKeys:
    entries = storage.list_backups(prefix)
    for entry in entries:
        if not entry.has_all_objects:
            event(get_logger(), "skipping incomplete backup (no manifest or no dump)", backup=entry.keys.backup_id, level=30)
            continue
        try:
            manifest = load_manifest(storage, entry.keys)
        except BackupError as exc:
            event(get_logger(), "skipping backup with an unreadable manifest", backup=entry.keys.backup_id, error=str(exc), level=30)
            continue
        if entry.dump is not None and manifest.dump.size != entry.dump.size:
            event(get_logger(), "skipping backup whose dump size differs from its manifest", backup=entry.keys.backup_id, level=30)
            continue
        if manifest.roles is not None and entry.roles is None:
            event(get_logger(), "skipping backup whose roles object is missing", backup=entry.keys.backup_id, level=30)
            continue
        return entry.keys
    raise VerifyError(
        f"no complete backup under s3://{storage.config.bucket}/{prefix.strip('/')}/",
        hint="check the bucket/prefix, or run `agent-bom-backup list` to see incomplete ones",
    )


def load_manifest(storage: Storage, keys: BackupKeys) -> Manifest:
    if not storage.exists(keys.manifest):
        if not storage.exists(keys.dump):
            raise VerifyError(
                f"no backup at {storage.config.uri(keys.dump)}",
                hint="check the timestamp; run `agent-bom-backup list`, or pass 'latest'",
            )
        raise VerifyError(
            f"backup {storage.config.uri(keys.dump)} has no manifest: it is incomplete (the job failed or is still running)",
            hint="restore another backup; run `agent-bom-backup list` to see complete ones",
        )
    manifest = Manifest.from_json(storage.get_bytes(keys.manifest), key=storage.config.uri(keys.manifest))
    if manifest.dump.key != keys.dump:
        raise VerifyError(
            f"manifest {storage.config.uri(keys.manifest)} describes {manifest.dump.key}, not {keys.dump}",
            hint="the manifest was copied or renamed; do not trust this backup",
        )
    return manifest


def storage_for_source(config: StorageConfig, source: str) -> StorageConfig:
    """The runbook passes only a URI and a region: the bucket comes from the URI."""
    if source == "latest":
        return config
    bucket, _ = parse_s3_uri(source)
    from dataclasses import replace

    return replace(config, bucket=bucket)


@dataclass
class _Target:
    conn_info: ConnInfo
    major: int
    session: SessionSettings
    info: pgcatalog.ServerInfo
    tables: list[str]
    roles: set[str]
    available_extensions: set[str]


def run_restore(config: RestoreConfig, report: RestoreReport) -> RestoreReport:
    log = get_logger()
    storage = Storage(storage_for_source(config.storage, config.source))
    keys = resolve_backup(storage, config.source)
    report.backup_uri = storage.config.uri(keys.dump)
    report.backup_id = keys.backup_id
    event(log, "restoring backup", uri=report.backup_uri, operator=report.operator)

    manifest = load_manifest(storage, keys)
    report.set_backup_time(manifest.data_loss_reference)
    report.backup_source = {
        "database": manifest.source.database,
        "server_version": manifest.source.server_version,
        "pg_dump_version": manifest.client.pg_dump_version,
        "is_standby": manifest.source.is_standby,
        "size": manifest.dump.size,
        "sha256": manifest.dump.sha256,
    }
    head = storage.head(keys.dump)
    if head.get("StorageClass") in ARCHIVED_CLASSES and "ongoing-request=\"false\"" not in head.get("Restore", ""):
        raise StorageError(
            f"{report.backup_uri} is in {head['StorageClass']} and must be restored from the archive first",
            hint="aws s3api restore-object --bucket ... --key ... --restore-request Days=2; retry when it completes",
        )
    if int(head["ContentLength"]) != manifest.dump.size:
        raise VerifyError(
            f"{report.backup_uri} is {head['ContentLength']} bytes but its manifest says {manifest.dump.size}: "
            "truncated or replaced",
            hint="restore another backup",
        )

    target = _inspect_target(config)
    report.target = target.conn_info.display()
    report.target_server_version = target.info.version
    _refuse_unsafe_target(config, manifest, target)
    missing_roles = sorted(
        set(manifest.roles_needed(owners=not config.no_owner, privileges=not config.no_privileges)) - target.roles
    )
    if missing_roles and not config.create_missing_roles:
        raise RefusedError(
            f"the target server lacks roles the backup names: {', '.join(missing_roles)}",
            hint="create them, or pass --create-missing-roles to create them from the stored roles object "
            "(or --no-owner --no-privileges for a scratch copy)",
        )
    if missing_roles and manifest.roles is None:
        raise RefusedError(f"roles {', '.join(missing_roles)} are missing and this backup has no roles object")
    missing_ext = sorted(set(manifest.extensions) - target.available_extensions)
    if missing_ext:
        raise RefusedError(
            f"the target server cannot install extensions the backup uses: {', '.join(missing_ext)}",
            hint="install them on the target server (pg_available_extensions), then retry",
        )
    clients = discover(config.pg_bin_dirs, config.pg_bin_dirs_only)
    client = select_restore_client(
        clients, manifest.client.pg_dump_major, target.major, manifest.client.compression, target.conn_info.sslmode
    )
    report.pg_restore_version = client.version
    tolerate_tt = client.major >= 17 and target.major < 17

    scratch_parent = Path(config.scratch_dir or tempfile.gettempdir())
    free = scratch_free_bytes(scratch_parent)
    if free < manifest.dump.size + 16 * 1024 * 1024:
        raise PreflightError(
            f"scratch directory {scratch_parent} has {free} bytes free; the dump needs {manifest.dump.size} "
            "plus 16 MiB of headroom",
            hint="point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at a larger volume",
        )

    report.plan = _plan(config, manifest, target, missing_roles, client, tolerate_tt)
    if config.dry_run:
        for step in report.plan:
            event(log, "plan", step=step)
        report.finish("dry-run", exit_code=0)
        return report

    with tempfile.TemporaryDirectory(prefix="agent-bom-restore-", dir=scratch_parent) as scratch:
        dump_path = Path(scratch) / (keys.backup_id + ".dump")
        _download_verified(storage, keys, manifest, dump_path)
        roles_sql = _download_roles(storage, manifest) if missing_roles else None

        # ---- from here on the target is modified ----
        if config.clean and target.tables:
            if config.safety_backup:
                report.safety_backup = _safety_backup(config, target, keys)
            _wipe(target)
        if missing_roles and roles_sql is not None:
            with target.conn_info.connect(target.session) as conn:
                created = create_missing_roles(conn, missing_roles, parse_globals(roles_sql))
            report.roles_created = created.created
            report.roles_needing_password = created.need_password
            for name in created.need_password:
                event(log, "created login role without a password: set one before the application connects",
                      role=name, level=30)
        report.tolerated_errors = _pg_restore(config, client, target, dump_path, tolerate_tt)

    with target.conn_info.connect(target.session) as conn:
        result = verify_database(conn, manifest, owners=not config.no_owner, privileges=not config.no_privileges)
    report.verification = result.to_dict()
    if not result.ok:
        problems = result.problems()
        raise VerifyError(
            f"restored database differs from the backup: {problems[0]}"
            + (f" (and {len(problems) - 1} more, see the report)" if len(problems) > 1 else "")
        )
    report.finish("verified", exit_code=0)
    event(log, "restore verified", uri=report.backup_uri, tables=len(result.tables),
          tenants=len(result.tenant_totals_actual))
    return report


def _inspect_target(config: RestoreConfig) -> _Target:
    conn_info = ConnInfo.parse(config.target_url, what="restore target URL")
    major = probe_server_major(conn_info)
    session = SessionSettings(server_major=major, lock_timeout_ms=config.lock_wait_timeout_s * 1000)
    with conn_info.connect(session) as conn:
        return _Target(
            conn_info=conn_info,
            major=major,
            session=session,
            info=pgcatalog.server_info(conn),
            tables=pgcatalog.user_tables(conn),
            roles=pgcatalog.existing_roles(conn),
            available_extensions=pgcatalog.available_extensions(conn),
        )


def _identity(info: pgcatalog.ServerInfo, conn_info: ConnInfo) -> tuple[str, str]:
    return (info.system_identifier or f"{conn_info.host}:{conn_info.params.get('port', '5432')}", info.database)


def _refuse_unsafe_target(config: RestoreConfig, manifest: Manifest, target: _Target) -> None:
    target_id = _identity(target.info, target.conn_info)
    live = False
    if config.live_source_url:
        try:
            live_info = ConnInfo.parse(config.live_source_url, what="AGENT_BOM_POSTGRES_URL")
            with live_info.connect(SessionSettings()) as conn:
                live = _identity(pgcatalog.server_info(conn), live_info) == target_id
        except PreflightError:
            live = False  # the live database is down: comparing with the manifest below
    if manifest.source.system_identifier and (manifest.source.system_identifier, manifest.source.database) == target_id:
        live = True
    if live and not config.approval:
        raise RefusedError(
            f"target {target.conn_info.display()} is the live source database of this backup",
            hint="restore into a staging database first; to restore over production pass --approval INCIDENT-ID "
            "once incident command approved the data-loss window",
        )
    if target.tables and not config.clean:
        shown = ", ".join(target.tables[:3]) + (" ..." if len(target.tables) > 3 else "")
        raise RefusedError(
            f"target database {target.info.database} is not empty ({len(target.tables)} objects: {shown})",
            hint=f"restore into an empty database, or pass --clean --confirm-target {target.info.database}",
        )
    if config.clean and target.tables and config.confirm_target != target.info.database:
        raise RefusedError(
            f"--clean would replace database {target.info.database} but --confirm-target is "
            f"{config.confirm_target or 'not set'}",
            hint=f"pass --confirm-target {target.info.database}",
        )


def _plan(config: RestoreConfig, manifest: Manifest, target: _Target, missing_roles: list[str],
          client: PgClient, tolerate_tt: bool) -> list[str]:
    steps = [f"download {manifest.dump.key} ({manifest.dump.size} bytes) and verify SHA-256 {manifest.dump.sha256[:16]}..."]
    if config.clean and target.tables:
        if config.safety_backup:
            steps.append(f"take a safety pg_dump of {target.info.database} into {_safety_dir(config)}")
        steps.append(f"drop every user schema in {target.info.database} ({len(target.tables)} objects)")
    if missing_roles:
        steps.append(f"create missing roles from the stored roles object: {', '.join(missing_roles)}")
    flags = " ".join(f for f, on in (("--no-owner", config.no_owner), ("--no-privileges", config.no_privileges)) if on)
    steps.append(f"pg_restore {client.version} --jobs={config.jobs} {flags}".rstrip())
    if tolerate_tt:
        steps.append(f"tolerate only '{TRANSACTION_TIMEOUT_ERROR}' (pg_restore {client.major} into PostgreSQL {target.major})")
    steps.append(f"verify {len(manifest.tables)} tables, {len(manifest.tenant_totals())} tenants and the schema fingerprint")
    return steps


def _download_verified(storage: Storage, keys: BackupKeys, manifest: Manifest, path: Path) -> None:
    log = get_logger()
    started = time.monotonic()
    last = [started]

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5:
            last[0] = now
            event(log, "downloading", bytes=done, of=manifest.dump.size,
                  percent=round(100 * done / max(manifest.dump.size, 1), 1))

    with open(path, "wb") as handle:
        size, digest = storage.download(keys.dump, handle, progress=progress)
    if size != manifest.dump.size or digest != manifest.dump.sha256:
        raise VerifyError(
            f"{storage.config.uri(keys.dump)} does not match its manifest "
            f"(size {size} vs {manifest.dump.size}, sha256 {digest[:12]}... vs {manifest.dump.sha256[:12]}...): "
            "corrupted or truncated; the target was not touched",
            hint="restore another backup",
        )
    event(log, "dump downloaded and verified", bytes=size, sha256=digest, seconds=round(time.monotonic() - started, 1))


def _download_roles(storage: Storage, manifest: Manifest) -> str:
    assert manifest.roles is not None
    import hashlib

    data = storage.get_bytes(manifest.roles.key)
    if hashlib.sha256(data).hexdigest() != manifest.roles.sha256:
        raise VerifyError(f"roles object {storage.config.uri(manifest.roles.key)} does not match its manifest")
    return data.decode()


def _safety_dir(config: RestoreConfig) -> Path:
    return Path(config.safety_backup_dir or os.path.join(os.getcwd(), "agent-bom-safety-backups"))


def _safety_backup(config: RestoreConfig, target: _Target, keys: BackupKeys) -> str:
    """The runbook: snapshot the current database if it is still reachable."""
    directory = _safety_dir(config)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PreflightError(
            f"cannot create the safety backup directory {directory}: {exc.strerror}",
            hint="set --safety-backup-dir to a writable volume, or decline with --no-safety-backup",
        ) from None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{target.info.database}-before-{keys.backup_id}-{stamp}.dump"
    client = select_dump_client(
        discover(config.pg_bin_dirs, config.pg_bin_dirs_only), target.major, target.conn_info.sslmode
    )
    dump_to_file(
        client, target.conn_info, target.session,
        DumpOptions(compression=Compression("gzip", 1), snapshot=None, lock_wait_timeout_s=config.lock_wait_timeout_s),
        path,
    )
    event(get_logger(), "safety backup written", path=str(path), bytes=path.stat().st_size)
    return str(path)


def _wipe(target: _Target) -> None:
    public_owner = "pg_database_owner" if target.major >= 15 else "CURRENT_USER"
    public_grant = "USAGE" if target.major >= 15 else "ALL"
    try:
        with target.conn_info.connect(target.session) as conn, conn.transaction():
            schemas = [r[0] for r in conn.execute(
                f"SELECT nspname FROM pg_namespace n WHERE {pgcatalog.USER_SCHEMAS}").fetchall()]
            for schema in schemas:
                conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
            conn.execute(f"CREATE SCHEMA public AUTHORIZATION {public_owner}")
            conn.execute(f"GRANT {public_grant} ON SCHEMA public TO PUBLIC")
    except psycopg.Error as exc:
        raise RestoreError(f"cleaning the target failed (nothing was dropped): {str(exc).strip().splitlines()[0]}") from None
    event(get_logger(), "target cleaned", schemas=len(schemas))


# Parallel workers interleave their lines ("pg_restore:pg_restore: error: ..."), so a
# message is found anywhere on a line, not only after a clean prefix.
_ERROR_MESSAGE = re.compile(r"\berror: (.*)$", re.MULTILINE)
TRANSACTION_TIMEOUT_QUERY_ERROR = f"could not execute query: ERROR:  {TRANSACTION_TIMEOUT_ERROR}"


_ERRORS_IGNORED = re.compile(r"errors ignored on restore: (\d+)")
TRANSACTION_TIMEOUT_STATEMENT = "SET transaction_timeout = 0;"
INTERLEAVED = "an error whose message is interleaved with other pg_restore output (see the full log)"


def classify_pg_restore_errors(stderr: str, tolerate_transaction_timeout: bool) -> tuple[list[str], list[str]]:
    """pg_restore's error messages split into (real, tolerated).

    Only ``SET transaction_timeout = 0`` (pg_restore >= 17 into a server < 17) is
    tolerated, and only when every transaction_timeout error is that statement: one from
    anything else (a function's SET clause, say) makes all of them real.

    Parallel workers write to the same stderr a piece at a time, so lines can be cut
    into each other: the decision rests on counts that survive that (pg_restore's final
    "errors ignored on restore: N", and whole messages, each written in one piece), and
    the line-based messages are only used to show what went wrong.
    """
    extracted = [m.group(1).strip() for m in _ERROR_MESSAGE.finditer(stderr)]
    ignored = _ERRORS_IGNORED.search(stderr)
    total = max(int(ignored.group(1)) if ignored else 0, len(extracted))
    timeouts = stderr.count(TRANSACTION_TIMEOUT_ERROR)
    if tolerate_transaction_timeout and timeouts and timeouts == stderr.count(TRANSACTION_TIMEOUT_STATEMENT):
        # a fragment of a transaction_timeout message cut by another worker's output is no other error
        others = [e for e in extracted
                  if TRANSACTION_TIMEOUT_ERROR not in e and not TRANSACTION_TIMEOUT_QUERY_ERROR.startswith(e)]
        real_count = max(0, total - timeouts)
        real = others[:real_count] + [INTERLEAVED] * max(0, real_count - len(others))
        return real, [TRANSACTION_TIMEOUT_QUERY_ERROR] * timeouts
    return extracted + [INTERLEAVED] * max(0, total - len(extracted)), []


def _pg_restore(config: RestoreConfig, client: PgClient, target: _Target, dump_path: Path, tolerate_tt: bool) -> list[str]:
    argv = [
        str(client.tool("pg_restore")),
        f"--dbname={target.conn_info.conninfo(target.session)}",
        "--no-password",
        f"--jobs={max(1, config.jobs)}",
    ]
    if config.no_owner:
        argv.append("--no-owner")
    if config.no_privileges:
        argv.append("--no-privileges")
    argv += ["--verbose", str(dump_path)]
    total = _toc_entries(client, dump_path)
    event(get_logger(), "running pg_restore", version=client.version, jobs=config.jobs, toc_entries=total)
    returncode, stderr = _run_with_progress(argv, target.conn_info.tool_env(), total)
    real, tolerated = classify_pg_restore_errors(stderr, tolerate_tt)
    if returncode != 0 and not real and not tolerated:
        raise RestoreError(f"pg_restore exited with code {returncode}: {stderr.strip().splitlines()[-1] if stderr.strip() else ''}")
    if real:
        raise RestoreError(
            f"pg_restore reported {len(real)} error(s); first: {real[0]}",
            hint="the target may be partially restored; fix the cause and rerun with --clean",
        )
    notes = []
    if tolerated:
        notes.append(
            f"{len(tolerated)} x {TRANSACTION_TIMEOUT_ERROR} (pg_restore {client.major} sets it; "
            f"PostgreSQL {target.major} lacks it; harmless)"
        )
    return notes


_PROGRESS_LINE = re.compile(r"pg_restore: (processing item|finished item|processing data for table)")


def _toc_entries(client: PgClient, dump_path: Path) -> int:
    result = subprocess.run([str(client.tool("pg_restore")), "--list", str(dump_path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith(";"))


def _run_with_progress(argv: list[str], env: dict[str, str], total: int) -> tuple[int, str]:
    """Run pg_restore --verbose, logging progress every 10 s so a long restore (one big
    table's COPY prints nothing for minutes) never looks hung; returns the exit code and
    the redacted stderr."""
    log = get_logger()
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
                returncode = process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                done = sum(1 for line in list(lines) if _PROGRESS_LINE.search(line))
                event(log, "restoring", items_done=done, toc_entries=total,
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


def scratch_free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def default_operator() -> str:
    try:
        return os.environ.get("AGENT_BOM_RESTORE_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

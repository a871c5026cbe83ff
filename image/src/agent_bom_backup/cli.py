"""The ``agent-bom-backup`` command: a thin click layer over the operation modules.

Every option has an environment variable (shown in --help); the Helm chart sets
environment variables only. docs/configuration.md is generated from these
declarations and a test keeps it current.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from . import __version__, notify, units
from .errors import BackupError, ConfigError, ExitCode, Interrupted
from .log import SECRET_PARAMS, Redactor, event, get_logger, password_candidates, setup_logging
from .notify import KINDS, PING_STYLES, Monitor, MonitorConfig
from .parts import DEFAULT_CONCURRENCY, DEFAULT_GROWTH_INTERVAL, DEFAULT_PART_SIZE, MiB, PartSchedule
from .storage import DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD, StorageConfig

F = TypeVar("F", bound=Callable[..., Any])


def parse_size(text: str, option: str) -> int:
    """A size option's value; a bad one is a configuration error (exit 3) with one line,
    whether it came from the command line or the chart's environment variable."""
    try:
        return units.parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}", hint="use a whole number with a unit, e.g. 8MiB or 64MiB") from None


def parse_duration(text: str) -> float:
    try:
        return units.parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def storage_options(func: F) -> F:
    options = [
        click.option("--bucket", envvar="AGENT_BOM_BACKUP_BUCKET", default="", show_envvar=True,
                     help="Bucket holding the backups."),
        click.option("--prefix", envvar="AGENT_BOM_BACKUP_PREFIX", default="agent-bom/postgres", show_default=True,
                     show_envvar=True, help="Key prefix of the backups."),
        click.option("--region", envvar="AGENT_BOM_BACKUP_REGION", default=None, show_envvar=True,
                     help="Bucket region (default: AWS_REGION / AWS_DEFAULT_REGION)."),
        click.option("--endpoint-url", envvar="AGENT_BOM_BACKUP_ENDPOINT_URL", default=None, show_envvar=True,
                     help="S3-compatible endpoint (MinIO, Ceph, R2, B2, GCS interop)."),
        click.option("--path-style/--no-path-style", envvar="AGENT_BOM_BACKUP_PATH_STYLE", default=False,
                     show_envvar=True, help="Path-style addressing (most S3-compatible stores need it)."),
        click.option("--ca-bundle", envvar="AGENT_BOM_BACKUP_CA_BUNDLE", default=None, show_envvar=True,
                     help="CA bundle file for the S3 endpoint's TLS certificate."),
        click.option("--checksum-mode", envvar="AGENT_BOM_BACKUP_CHECKSUM_MODE", default="auto", show_default=True,
                     show_envvar=True, type=click.Choice(["auto", "when_supported", "when_required"]),
                     help="botocore request/response checksums; auto = when_required for any endpoint that is not AWS's own "
                     "(--endpoint-url, AWS_ENDPOINT_URL[_S3] or the AWS config file)."),
        click.option("--verify-region/--no-verify-region", envvar="AGENT_BOM_BACKUP_VERIFY_REGION", default=True,
                     show_envvar=True, help="Compare the bucket's location with --region in preflight."),
        click.option("--log-format", envvar="AGENT_BOM_BACKUP_LOG_FORMAT", default="auto", show_default=True,
                     show_envvar=True, type=click.Choice(["auto", "json", "text"]),
                     help="Log format; auto = text on a terminal, JSON lines otherwise."),
        click.option("--log-level", envvar="AGENT_BOM_BACKUP_LOG_LEVEL", default="info", show_default=True,
                     show_envvar=True, type=click.Choice(["debug", "info", "warning", "error"])),
    ]
    return _apply(func, options)


def _apply(func: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


pg_bin_dir_option = click.option(
    "--pg-bin-dir", "pg_bin_dirs", envvar="AGENT_BOM_BACKUP_PG_BIN_DIRS", multiple=True, show_envvar=True,
    help="Directory with PostgreSQL binaries, searched first (repeatable; env: colon-separated).")
only_pg_bin_dirs_option = click.option(
    "--only-pg-bin-dirs", "pg_bin_dirs_only", envvar="AGENT_BOM_BACKUP_PG_BIN_DIRS_ONLY", is_flag=True,
    default=False, show_envvar=True,
    help="Use only the --pg-bin-dir directories (skip /usr/lib/postgresql, the embedded wheel and PATH).")
lock_wait_timeout_option = click.option(
    "--lock-wait-timeout", envvar="AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT", default=300, show_default=True,
    show_envvar=True, type=click.IntRange(1),
    help="Seconds to wait for a lock (on a table to dump, on the restore target) before failing.")
scratch_dir_option = click.option(
    "--scratch-dir", envvar="AGENT_BOM_BACKUP_SCRATCH_DIR", default=None, show_envvar=True,
    help="Directory for the downloaded dump (restore, verify --deep; default: TMPDIR).")


def monitor_options(func: F) -> F:
    """How the end of a run reaches a person (notify.py): Pushgateway, ping, webhook."""
    return _apply(func, [
        click.option("--pushgateway-url", envvar="AGENT_BOM_BACKUP_PUSHGATEWAY_URL", default=None, show_envvar=True,
                     help="Push the run's metrics (success and failure) to this Prometheus Pushgateway; its basic "
                     "auth from AGENT_BOM_BACKUP_PUSHGATEWAY_USERNAME/_PASSWORD or a whole header from "
                     "AGENT_BOM_BACKUP_PUSHGATEWAY_AUTHORIZATION."),
        click.option("--pushgateway-timeout", envvar="AGENT_BOM_BACKUP_PUSHGATEWAY_TIMEOUT", default=10.0,
                     show_default=True, show_envvar=True, type=click.FloatRange(0.1, 120),
                     help="Seconds one push may take (3 attempts)."),
        click.option("--cronjob", envvar="AGENT_BOM_BACKUP_CRONJOB", default=None, show_envvar=True,
                     help="Name of the CronJob running this (the chart sets it): the pushed metrics' group "
                     "(default: agent-bom-KIND)."),
        click.option("--namespace", envvar="AGENT_BOM_BACKUP_NAMESPACE", default=None, show_envvar=True,
                     help="Namespace of that CronJob (the chart sets it; default: default)."),
        click.option("--job-kind", envvar="AGENT_BOM_BACKUP_JOB_KIND", default=None, show_envvar=True,
                     type=click.Choice(list(KINDS)),
                     help="What this run is for the notifications (default: backup, restore, retention for "
                     "prune; the drill CronJob sets drill)."),
        click.option("--ping-url", envvar="AGENT_BOM_BACKUP_PING_URL", default=None, show_envvar=True,
                     help="Dead-man ping URL of this job's check (prefer the env var: the URL carries a token)."),
        click.option("--ping-style", envvar="AGENT_BOM_BACKUP_PING_STYLE", default="healthchecks",
                     show_default=True, show_envvar=True, type=click.Choice(list(PING_STYLES)),
                     help="healthchecks: <url>/start, <url>, <url>/fail; cronitor: ?state=run|complete|fail; "
                     "uptime-kuma: ?status=up|down&msg=... at the end."),
        click.option("--webhook-url", envvar="AGENT_BOM_BACKUP_WEBHOOK_URL", default=None, show_envvar=True,
                     help="POST a JSON summary of the run here (with a Slack/Teams-compatible text; prefer the "
                     "env var: the URL carries a token)."),
        click.option("--notify-timeout", envvar="AGENT_BOM_BACKUP_NOTIFY_TIMEOUT", default=10.0, show_default=True,
                     show_envvar=True, type=click.FloatRange(0.1, 120),
                     help="Seconds one ping or webhook request may take (3 attempts; a failure is a warning)."),
    ])


def monitor_config(kwargs: dict[str, Any], command: str) -> MonitorConfig | None:
    """The notifications of a command that has :func:`monitor_options` (None otherwise)."""
    if "ping_url" not in kwargs:
        return None
    user = os.environ.get("AGENT_BOM_BACKUP_PUSHGATEWAY_USERNAME")
    password = os.environ.get("AGENT_BOM_BACKUP_PUSHGATEWAY_PASSWORD")
    return MonitorConfig(
        kind=kwargs.pop("job_kind") or {"prune": "retention"}.get(command, command),
        pushgateway_url=kwargs.pop("pushgateway_url") or None,
        pushgateway_timeout_s=kwargs.pop("pushgateway_timeout"),
        pushgateway_basic_auth=(user or "", password) if password else None,
        pushgateway_authorization=os.environ.get("AGENT_BOM_BACKUP_PUSHGATEWAY_AUTHORIZATION") or None,
        cronjob=kwargs.pop("cronjob") or None,
        namespace=kwargs.pop("namespace") or None,
        ping_url=kwargs.pop("ping_url") or None,
        ping_style=kwargs.pop("ping_style"),
        webhook_url=kwargs.pop("webhook_url") or None,
        timeout_s=kwargs.pop("notify_timeout"),
    )


class _LineString(click.ParamType):
    """A string option whose environment variable holds one value per line (an SSH
    recipient contains spaces, so whitespace cannot separate them)."""

    name = "text"
    envvar_list_splitter = "\n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)


identity_option = click.option(
    "--identity", "identity_file", envvar="AGENT_BOM_RESTORE_IDENTITY_FILE", default=None, show_envvar=True,
    help="age identity file (age-keygen's AGE-SECRET-KEY-1... lines, or an OpenSSH private key) that decrypts "
    "backups encrypted with --encrypt-to; mount it from a Secret. Not needed for unencrypted backups.")


def pg_client_options(func: F) -> F:
    """Where the PostgreSQL client programs come from (backup, restore)."""
    return _apply(func, [pg_bin_dir_option, only_pg_bin_dirs_option])


class LineSeparated(click.ParamType):
    """A string option whose environment variable holds one value per line (a table name
    may contain spaces)."""

    name = "text"
    envvar_list_splitter = "\n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)


def pg_bin_dirs(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """``--pg-bin-dir`` values (each may hold a colon-separated list, as the env var does)."""
    return tuple(d for value in kwargs.pop("pg_bin_dirs") for d in value.split(":") if d)


def database_url() -> str:
    """The source database's URL, from the environment only (never argv)."""
    url = os.environ.get("AGENT_BOM_POSTGRES_URL", "")
    if not url:
        raise ConfigError("AGENT_BOM_POSTGRES_URL is not set", hint="the chart sets it from the database Secret")
    return url


def storage_config(kwargs: dict[str, Any], **extra: Any) -> StorageConfig:
    region = kwargs.pop("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return StorageConfig(
        bucket=kwargs.pop("bucket"),
        prefix=kwargs.pop("prefix"),
        region=region,
        endpoint_url=kwargs.pop("endpoint_url"),
        path_style=kwargs.pop("path_style"),
        ca_bundle=kwargs.pop("ca_bundle"),
        checksum_mode=kwargs.pop("checksum_mode"),
        verify_region=kwargs.pop("verify_region"),
        **extra,
    )


def operation(func: F) -> F:
    """Logging set-up, signal handling and the one top-level error handler."""

    @wraps(func)
    def wrapper(**kwargs: Any) -> None:
        redactor = Redactor()
        # a URL's password, not the whole URL: the report must still say which server it means
        for name in ("AGENT_BOM_POSTGRES_URL", "AGENT_BOM_RESTORE_POSTGRES_URL", "AGENT_BOM_VERIFY_SCRATCH_URL",
                     "AGENT_BOM_POSTGRES_MAINTENANCE_URL"):
            value = os.environ.get(name)
            if value:
                _add_url_password(redactor, value)
        for name in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            redactor.add(os.environ.get(name))
        monitoring = monitor_config(kwargs, func.__name__)
        for secret in monitoring.secrets() if monitoring else ():
            redactor.add(secret)
        log = setup_logging(kwargs.pop("log_format"), kwargs.pop("log_level"), redactor)

        def on_signal(signum: int, _frame: object) -> None:
            raise Interrupted(f"received {signal.Signals(signum).name}: stopped before completion")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        monitor = Monitor(monitoring) if monitoring and monitoring.enabled else None
        exit_code, reason = int(ExitCode.OK), ""
        try:
            if monitor:
                monitor.start()
            func(**kwargs)
        except BackupError as exc:
            event(log, str(exc), level=logging.ERROR, exit_code=int(exc.exit_code), error=type(exc).__name__)
            exit_code, reason = int(exc.exit_code), str(exc)
        except SystemExit as exc:  # check: exit 10
            exit_code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else int(ExitCode.INTERNAL)
            reason = "" if exit_code == 0 else f"exit {exit_code}"
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            log.debug("unexpected error", exc_info=True)
            event(log, f"unexpected error: {type(exc).__name__}: {exc}", level=logging.ERROR,
                  exit_code=int(ExitCode.INTERNAL))
            exit_code, reason = int(ExitCode.INTERNAL), f"unexpected error: {type(exc).__name__}: {exc}"
        if monitor:
            # after the run: whatever happens here is a warning, never another exit code
            monitor.finish(exit_code, reason)
        if exit_code:
            sys.exit(exit_code)

    return wrapper  # type: ignore[return-value]


def _add_url_password(redactor: Redactor, url: str) -> None:
    """Register the URL's password, parsed by libpq, and as read from the text: a URL
    libpq cannot parse (a raw % or space) is exactly when its error quotes the password."""
    for candidate in password_candidates(url):
        redactor.add(candidate)
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported elsewhere
        return
    for name in SECRET_PARAMS:
        if params.get(name):
            redactor.add(str(params[name]))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agent-bom-backup")
def main() -> None:
    """Back up and restore the agent-bom control-plane PostgreSQL database.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 configuration, 4 preflight,
    5 dump, 6 storage, 7 verification, 8 refused, 9 restore (target untouched),
    10 stale backup, 11 restore failed after changing the target, 143 interrupted.
    """


@main.command()
@storage_options
@click.option("--sse", envvar="AGENT_BOM_BACKUP_SSE", default="none", show_default=True, show_envvar=True,
              type=click.Choice(["none", "AES256", "aws:kms"]),
              help="Server-side encryption of the objects; the store's answers must confirm it (exit 8 otherwise).")
@click.option("--kms-key-id", envvar="AGENT_BOM_BACKUP_KMS_KEY_ID", default=None, show_envvar=True,
              help="KMS key id, ARN or alias for aws:kms.")
@click.option("--storage-class", envvar="AGENT_BOM_BACKUP_STORAGE_CLASS", default=None, show_envvar=True,
              help="S3 storage class of the dump (e.g. STANDARD_IA).")
@click.option("--compression", envvar="AGENT_BOM_BACKUP_COMPRESSION", default="auto", show_default=True,
              show_envvar=True, help="auto (zstd:1 where the chosen pg_dump has zstd, else gzip:1), none, gzip[:1-9], "
              "lz4[:N] or zstd[:N] (lz4/zstd need pg_dump >= 16 built with them, and so does pg_restore).")
@click.option("--compression-fallback", envvar="AGENT_BOM_BACKUP_COMPRESSION_FALLBACK", default=None,
              show_envvar=True, help="Used when the chosen pg_dump lacks the requested algorithm.")
@click.option("--tenant-column", envvar="AGENT_BOM_BACKUP_TENANT_COLUMN", default="team_id", show_default=True,
              show_envvar=True, help="Column whose values are counted per tenant.")
@lock_wait_timeout_option
@click.option("--enable-row-security/--no-enable-row-security", envvar="AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY",
              default=False, show_envvar=True,
              help="Dump with row security on (needs a --session-setting bypass your policies honour).")
@click.option("--session-setting", "session_settings", envvar="AGENT_BOM_BACKUP_SESSION_SETTINGS", multiple=True,
              show_envvar=True, help="NAME=VALUE set on every connection (repeatable; env: space-separated).")
@click.option("--exclude-table", "exclude_tables", envvar="AGENT_BOM_BACKUP_EXCLUDE_TABLES", multiple=True,
              show_envvar=True, type=LineSeparated(),
              help="SCHEMA.TABLE left out of the backup whole: definition and data, with its partitions and owned "
              "sequences; recorded in the manifest and listed by every restore (repeatable; env: one per line).")
@click.option("--part-size", envvar="AGENT_BOM_BACKUP_PART_SIZE", default=f"{DEFAULT_PART_SIZE // MiB}MiB", show_default=True,
              show_envvar=True, help="First multipart part size (5MiB-5GiB); parts grow from there.")
@click.option("--part-growth-interval", envvar="AGENT_BOM_BACKUP_PART_GROWTH_INTERVAL",
              default=DEFAULT_GROWTH_INTERVAL, show_default=True, show_envvar=True, type=click.IntRange(1),
              help="The part size doubles every this many parts.")
@click.option("--upload-concurrency", envvar="AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY", default=DEFAULT_CONCURRENCY,
              show_default=True, show_envvar=True, type=click.IntRange(1, 32),
              help="Parts uploaded in parallel (fewer as parts grow, within --memory-budget).")
@click.option("--memory-budget", envvar="AGENT_BOM_BACKUP_MEMORY_BUDGET", default=None, show_envvar=True,
              help="Memory the backup may use (its part buffers and the process itself; default: 60% of "
              "--memory-limit, else of the cgroup's memory limit, else 2GiB); below what the parts of a 5 TiB dump "
              "need it caps the dump size (said at start), and one that cannot hold a first part is refused.")
@click.option("--memory-limit", envvar="AGENT_BOM_BACKUP_MEMORY_LIMIT", default=None, show_envvar=True,
              help="The container's memory limit (the chart passes limits.memory through the downward API); "
              "the default --memory-budget is 60% of it.")
@pg_client_options
@click.option("--metrics-file", envvar="AGENT_BOM_BACKUP_METRICS_FILE", default=None, show_envvar=True,
              help="Write Prometheus textfile metrics here after a successful backup (only useful where a "
              "node-exporter textfile collector reads a mounted volume; a failure is a warning).")
@click.option("--encrypt-to", "encrypt_to", envvar="AGENT_BOM_BACKUP_ENCRYPT_TO", multiple=True, type=_LineString(),
              show_envvar=True, help="Encrypt the dump and roles objects on the client to this age recipient "
              "(age1... X25519 public key, or an SSH ed25519/RSA public key line; repeatable; env: one per line). "
              "Only the holder of a matching identity can restore; the manifest stays readable.")
@monitor_options
@operation
def backup(**kwargs: Any) -> None:
    """Dump AGENT_BOM_POSTGRES_URL and stream it to S3 (run by the CronJob).

    The database URL is read from the environment only, so it never appears in argv.
    """
    from .backup import BackupConfig, run_backup
    from .resources import memory_budget

    url = database_url()
    storage = storage_config(
        kwargs, sse=kwargs.pop("sse"), kms_key_id=kwargs.pop("kms_key_id"), storage_class=kwargs.pop("storage_class")
    )
    config = BackupConfig(
        database_url=url,
        storage=storage,
        compression=kwargs["compression"],
        compression_fallback=kwargs["compression_fallback"],
        tenant_column=kwargs["tenant_column"],
        lock_wait_timeout_s=kwargs["lock_wait_timeout"],
        enable_row_security=kwargs["enable_row_security"],
        session_settings=_settings(kwargs["session_settings"]),
        part_schedule=PartSchedule(parse_size(kwargs["part_size"], "--part-size"), kwargs["part_growth_interval"]),
        upload_concurrency=kwargs["upload_concurrency"],
        memory_budget=memory_budget(
            parse_size(kwargs["memory_budget"], "--memory-budget") if kwargs["memory_budget"] else None,
            parse_size(kwargs["memory_limit"], "--memory-limit") if kwargs["memory_limit"] else None,
        ),
        pg_bin_dirs=pg_bin_dirs(kwargs),
        pg_bin_dirs_only=kwargs["pg_bin_dirs_only"],
        metrics_file=kwargs["metrics_file"],
        exclude_tables=tuple(name.strip() for name in kwargs["exclude_tables"] if name.strip()),
        encrypt_to=tuple(kwargs["encrypt_to"]),
    )
    manifest = run_backup(config)
    notify.record(backup_uri=storage.uri(manifest.dump.key), bytes=manifest.dump.size, parts=manifest.dump.parts,
                  rows=sum(t.rows for t in manifest.tables), tenants=len(manifest.tenant_totals()))
    click.echo(storage.uri(manifest.dump.key))


def _settings(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        for item in value.split():
            name, sep, setting = item.partition("=")
            if not sep or not name:
                raise ConfigError(f"session setting {item!r} is not NAME=VALUE")
            pairs.append((name, setting))
    return tuple(pairs)


def _threshold(value: str) -> int | None:
    """--parallel-download-threshold: a size, or off (None)."""
    return None if value.strip().lower() == "off" else parse_size(value, "--parallel-download-threshold")


@main.command()
@click.argument("backup_uri", metavar="BACKUP_URI|latest")
@storage_options
@click.option("--target-url", envvar="AGENT_BOM_RESTORE_POSTGRES_URL", default="", show_envvar=True,
              help="Database to restore into (prefer the env var: argv is visible to other users).")
@click.option("--clean/--no-clean", envvar="AGENT_BOM_RESTORE_CLEAN", default=False, show_envvar=True,
              help="Replace a non-empty target (needs --confirm-target; takes a safety backup first).")
@click.option("--confirm-target", envvar="AGENT_BOM_RESTORE_CONFIRM_TARGET", default=None, show_envvar=True,
              help="The target database's name, confirming --clean.")
@click.option("--approval", envvar="AGENT_BOM_RESTORE_APPROVAL", default=None, show_envvar=True,
              help="Incident/approval id; required to restore over the live source database.")
@click.option("--operator", envvar="AGENT_BOM_RESTORE_OPERATOR", default=None, show_envvar=True,
              help="Who runs the restore (default: the OS user).")
@click.option("--create-missing-roles/--no-create-missing-roles", envvar="AGENT_BOM_RESTORE_CREATE_MISSING_ROLES",
              default=False, show_envvar=True, help="Create roles the target lacks from the stored roles object.")
@click.option("--no-owner/--owner", "no_owner", envvar="AGENT_BOM_RESTORE_NO_OWNER", default=False,
              show_envvar=True, help="Do not restore object owners (scratch copies).")
@click.option("--no-privileges/--privileges", "no_privileges", envvar="AGENT_BOM_RESTORE_NO_PRIVILEGES",
              default=False, show_envvar=True, help="Do not restore grants (scratch copies).")
@click.option("--jobs", envvar="AGENT_BOM_RESTORE_JOBS", default=None, show_envvar=True,
              type=click.IntRange(1, 64),
              help="Parallel pg_restore jobs (default: the CPUs this process may use: its CPU affinity, fewer under "
              "a cgroup CPU quota).")
@click.option("--parallel-download-threshold", envvar="AGENT_BOM_RESTORE_PARALLEL_DOWNLOAD_THRESHOLD",
              default=f"{DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD // MiB}MiB", show_default=True, show_envvar=True,
              help="Download dumps at least this large in parallel ranged GETs (off: always one stream; stores "
              "that read the whole object for every ranged GET are detected and get one stream).")
@click.option("--report", "report_path", envvar="AGENT_BOM_RESTORE_REPORT", default=None, show_envvar=True,
              help="Write the JSON restore report here (the summary goes to stdout).")
@click.option("--dry-run", envvar="AGENT_BOM_RESTORE_DRY_RUN", is_flag=True, default=False, show_envvar=True,
              help="Run every check and print the plan without touching anything.")
@click.option("--no-safety-backup", envvar="AGENT_BOM_RESTORE_NO_SAFETY_BACKUP", is_flag=True, default=False,
              show_envvar=True, help="Skip the safety pg_dump of a target replaced by --clean.")
@click.option("--safety-backup-dir", envvar="AGENT_BOM_RESTORE_SAFETY_BACKUP_DIR", default=None, show_envvar=True,
              help="Where the safety dump goes (default: ./agent-bom-safety-backups).")
@click.option("--safety-backup-to-bucket/--no-safety-backup-to-bucket", envvar="AGENT_BOM_RESTORE_SAFETY_BACKUP_TO_BUCKET",
              default=False, show_envvar=True,
              help="Write the safety backup as a backup like any other (dump, roles, manifest) to the bucket under "
              "<prefix>/safety/ (the restore identity needs s3:PutObject there) instead of --safety-backup-dir; go "
              "back with `restore <its URI> --clean`.")
@click.option("--terminate-sessions/--no-terminate-sessions", envvar="AGENT_BOM_RESTORE_TERMINATE_SESSIONS",
              default=False, show_envvar=True,
              help="End other sessions on the target (REVOKE CONNECT from every role but the restore role, "
              "then pg_terminate_backend) instead of refusing; CONNECT is granted back when the restore ends.")
@scratch_dir_option
@identity_option
@lock_wait_timeout_option
@pg_client_options
@click.option("--allow-older/--no-allow-older", envvar="AGENT_BOM_RESTORE_ALLOW_OLDER", default=False,
              show_envvar=True, help="With latest or a prefix: when the newest backup is unreadable or archived, "
              "restore the newest complete one instead (the report records what was passed over).")
@monitor_options
@operation
def restore(**kwargs: Any) -> None:
    """Restore BACKUP_URI (or the newest complete backup) and verify it against its manifest.

    Nothing changes before every check has passed (--dry-run prints the plan). A failure
    after the target was changed exits 11 and says what changed and how to go back.
    """
    from .restore import RestoreConfig, run_restore

    if not kwargs["target_url"]:
        raise ConfigError("no restore target", hint="set AGENT_BOM_RESTORE_POSTGRES_URL (or --target-url)")
    config = RestoreConfig(
        source=kwargs["backup_uri"],
        target_url=kwargs["target_url"],
        storage=storage_config(kwargs),
        live_source_url=os.environ.get("AGENT_BOM_POSTGRES_URL") or None,
        clean=kwargs["clean"],
        confirm_target=kwargs["confirm_target"],
        approval=kwargs["approval"],
        operator=kwargs["operator"],
        create_missing_roles=kwargs["create_missing_roles"],
        no_owner=kwargs["no_owner"],
        no_privileges=kwargs["no_privileges"],
        jobs=kwargs["jobs"],
        parallel_download_threshold=_threshold(kwargs["parallel_download_threshold"]),
        dry_run=kwargs["dry_run"],
        safety_backup=not kwargs["no_safety_backup"],
        safety_backup_dir=kwargs["safety_backup_dir"],
        scratch_dir=kwargs["scratch_dir"],
        pg_bin_dirs=pg_bin_dirs(kwargs),
        pg_bin_dirs_only=kwargs["pg_bin_dirs_only"],
        lock_wait_timeout_s=kwargs["lock_wait_timeout"],
        allow_older=kwargs["allow_older"],
        report_path=kwargs["report_path"],
        identity_file=kwargs["identity_file"],
        terminate_sessions=kwargs["terminate_sessions"],
        safety_backup_to_bucket=kwargs["safety_backup_to_bucket"],
    )
    outcome = run_restore(config)
    notify.record(**_restore_facts(outcome.report))
    click.echo(outcome.report.summary(), nl=False)
    if outcome.error is not None:
        raise outcome.error


def _restore_facts(report: Any) -> dict[str, Any]:
    """What a restore tells the notifications: the backup, and for a verified restore its
    rows, tenants and how long it took."""
    facts: dict[str, Any] = {"backup_uri": report.backup_uri}
    if report.status.startswith("verified") and report.finished_at:
        from datetime import datetime

        facts["restore_seconds"] = (datetime.fromisoformat(report.finished_at)
                                    - datetime.fromisoformat(report.started_at)).total_seconds()
    if report.verification is not None:
        facts["rows"] = sum(t.actual or 0 for t in report.verification.tables)
        facts["tenants"] = len(report.verification.tenant_totals_actual)
    return facts


@main.command()
@storage_options
@click.option("--skip-database", is_flag=True, default=False, help="Check the bucket only.")
@operation
def preflight(**kwargs: Any) -> None:
    """Check that the database and the bucket are reachable with this identity (helm test)."""
    from .pgconn import ConnInfo, probe_server_major
    from .storage import Storage

    storage = Storage(storage_config(kwargs))
    log = get_logger()
    if not kwargs["skip_database"]:
        conn_info = ConnInfo.parse(database_url(), what="AGENT_BOM_POSTGRES_URL")
        major = probe_server_major(conn_info)
        event(log, "database reachable", server=conn_info.display(), server_major=major)
    storage.preflight()
    event(log, "bucket reachable", bucket=storage.config.bucket, prefix=storage.config.prefix)
    click.echo("preflight ok")


# --------------------------------------------------------------------------- operator tooling
# list / check (catalog.py), verify (verify.py), prune (prune.py): these commands
# only parse options and format the results.


def _duration_option(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    """A duration option (26h, 90m, 2d) in seconds; a bad value is a usage error (exit 2)."""
    return parse_duration(value)


@main.command(name="list")
@storage_options
@click.option("--json", "as_json", envvar="AGENT_BOM_LIST_JSON", is_flag=True, default=False, show_envvar=True,
              help="Print JSON instead of the table.")
@operation
def list_command(**kwargs: Any) -> None:
    """List the backups under the prefix, newest first, with their state (and why).

    Reads every manifest (s3:ListBucket + s3:GetObject). States: complete (dump, roles and
    manifest there, the manifest parses and describes them), incomplete (the run did not
    finish writing it), unreadable (committed, but its manifest cannot be read or does not
    match), archived (in Glacier/Deep Archive: restore it from the archive first).
    """
    import json

    from .catalog import COMPLETE, INCOMPLETE, STATES, list_backups
    from .units import human_age, human_size
    from .storage import Storage

    storage = Storage(storage_config(kwargs))
    statuses = list_backups(storage)
    location = f"s3://{storage.config.bucket}/{storage.config.prefix.strip('/')}/"
    if kwargs["as_json"]:
        click.echo(json.dumps({"location": location, "backups": [s.to_dict() for s in statuses]}, indent=2))
        return
    if not statuses:
        click.echo(f"no backups under {location}")
        return
    rows = [("BACKUP", "AGE", "SIZE", "STATUS", "URI")]
    for s in statuses:
        rows.append((s.backup_id, human_age(s.age_seconds), human_size(s.size),
                     s.state if s.complete else s.state.upper(), s.uri))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        click.echo(line)
        if index and not statuses[index - 1].complete:
            click.echo(" " * (widths[0] + 2) + f"-> {statuses[index - 1].reason}")
    counts = ", ".join(f"{sum(1 for s in statuses if s.state == state)} {state}" for state in STATES
                       if state in (COMPLETE, INCOMPLETE) or any(s.state == state for s in statuses))
    click.echo(f"{len(statuses)} backup(s) under {location}: {counts}")


@main.command()
@click.argument("backup_uri", metavar="BACKUP_URI|latest")
@storage_options
@click.option("--deep/--no-deep", envvar="AGENT_BOM_VERIFY_DEEP", default=False, show_envvar=True,
              help="Also restore into a scratch database and verify rows, tenants and schema, then drop it.")
@click.option("--scratch-url", envvar="AGENT_BOM_VERIFY_SCRATCH_URL", default=None, show_envvar=True,
              help="Server for --deep (a database is created and dropped there; prefer the env var). "
              "Default: a throwaway local cluster when PostgreSQL server binaries are installed.")
@scratch_dir_option
@identity_option
@pg_bin_dir_option
@operation
def verify(**kwargs: Any) -> None:
    """Check a backup's size and SHA-256 against its manifest (streamed, no temp file).

    Exit 7 when anything differs. --deep restores it into a scratch database with the
    restore machinery, compares rows, tenants and the schema fingerprint, then drops it.
    """
    from .errors import VerifyError
    from .report import exclusion_lines
    from .units import human_size
    from .verify import verify_backup

    result = verify_backup(
        storage_config(kwargs),
        kwargs["backup_uri"],
        deep=kwargs["deep"],
        scratch_url=kwargs["scratch_url"] or None,
        pg_bin_dirs=pg_bin_dirs(kwargs),
        scratch_dir=kwargs["scratch_dir"],
        identity_file=kwargs["identity_file"],
    )
    click.echo(f"backup {result.backup_id}: {result.uri}")
    for check in result.objects:
        problem = check.problem()
        state = "ok" if check.ok else "MISMATCH"
        click.echo(f"  {state:<8} {check.key}: {human_size(check.actual_size)}, sha256 "
                   f"{(check.actual_sha256 or '-')[:16]}..." + (f"  ({problem})" if problem else ""))
    if result.encrypted_to is not None:
        click.echo(f"           encrypted (age) to {', '.join(result.encrypted_to)}: "
                   + ("decrypted with --identity by the restore below" if kwargs["deep"]
                      else "the ciphertext was checked; --deep with --identity also decrypts and restores it"))
    deep = result.deep
    if deep is not None:
        state = "ok" if deep.ok else "MISMATCH"
        skipped = f"; not compared: {', '.join(deep.categories_skipped)}" if deep.categories_skipped else ""
        click.echo(f"  {state:<8} restore into {deep.database} on {deep.target} (PostgreSQL {deep.server_version or '?'}, "
                   f"{deep.fidelity}): {deep.tables} tables, {deep.tenants} tenants, schema fingerprint"
                   f"{skipped}; dropped")
        if deep.roles_created and not deep.throwaway:
            click.echo(f"           roles created on the scratch server (cluster-wide, left in place): "
                       f"{', '.join(deep.roles_created)}")
        for problem in deep.problems:
            click.echo(f"           {problem}")
        for line in exclusion_lines(deep.excluded_tables):
            click.echo(f"  {line}")
    elif kwargs["deep"] and not result.ok:
        click.echo("  skipped  restore: the objects do not match the manifest")
    if not result.ok:
        problems = result.problems()
        raise VerifyError(f"backup {result.uri} failed verification: {problems[0]}"
                          + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    click.echo(f"verified{' (with exclusions)' if result.deep and result.deep.excluded_tables else ''} "
               f"in {result.seconds}s")


@main.command()
@storage_options
@click.option("--max-age", envvar="AGENT_BOM_BACKUP_MAX_AGE", default="26h", show_default=True, show_envvar=True,
              callback=_duration_option, help="Oldest acceptable age of the newest complete backup (e.g. 26h, 90m, 2d).")
@click.option("--recipients/--no-recipients", "show_recipients", envvar="AGENT_BOM_CHECK_RECIPIENTS", default=False,
              show_envvar=True, help="Also list, per backup, the age recipients whose identity restores it (reads "
              "the manifests: needs s3:GetObject on them, which the backup role lacks).")
@operation
def check(**kwargs: Any) -> None:
    """Exit 10 when the newest complete backup is older than --max-age, or there is none.

    For cron monitors and smoke checks. Needs s3:ListBucket only (the backup role's
    policy suffices): complete means dump and manifest both exist, and the age comes
    from the UTC timestamp in the backup's name (when it started).
    """
    from .catalog import check_freshness
    from .storage import Storage

    storage = Storage(storage_config(kwargs))
    result = check_freshness(storage, kwargs["max_age"])
    click.echo(result.line())
    if kwargs["show_recipients"]:
        _echo_recipients(storage)
    if not result.ok:
        sys.exit(int(ExitCode.STALE))


def _echo_recipients(storage: Any) -> None:
    """One line per committed backup: the age recipients whose identity restores it."""
    from .catalog import INCOMPLETE, list_backups

    click.echo("identities needed (age recipients per backup, newest first):")
    for status in list_backups(storage):
        if status.state == INCOMPLETE:
            continue
        manifest = status.manifest
        if manifest is None:
            needs = f"unknown: {status.reason}"
        elif manifest.encryption is None:
            needs = "none (not client-encrypted)"
        else:
            needs = f"any one of: {', '.join(manifest.encryption.recipients)}"
        click.echo(f"  {status.backup_id}  {needs}")


@main.command()
@storage_options
@click.option("--keep-days", envvar="AGENT_BOM_PRUNE_KEEP_DAYS", required=True, show_envvar=True,
              type=click.FloatRange(min=0), help="Keep every backup younger than this many days.")
@click.option("--keep-last", envvar="AGENT_BOM_PRUNE_KEEP_LAST", default=1, show_default=True, show_envvar=True,
              type=click.IntRange(min=1), help="Keep at least this many newest complete backups, whatever their age.")
@click.option("--incomplete-grace", envvar="AGENT_BOM_PRUNE_INCOMPLETE_GRACE", default="24h", show_default=True,
              show_envvar=True, callback=_duration_option,
              help="Never delete an incomplete backup younger than this (it may still be running).")
@click.option("--dry-run/--yes", "dry_run", envvar="AGENT_BOM_PRUNE_DRY_RUN", default=True, show_default=True,
              show_envvar=True, help="Only print what would be deleted (default); --yes deletes.")
@monitor_options
@operation
def prune(**kwargs: Any) -> None:
    """Delete expired backups (dump, roles and manifest together; the manifest first).

    Never deletes the newest complete backup (what restore latest restores) or an
    unreadable one. Incomplete backups (failed runs) older than the keep window go too.
    Needs s3:ListBucket, s3:GetObject on the manifests, s3:DeleteObject and
    s3:GetBucketVersioning: run it under its own identity, not the backup role's. On a
    versioned bucket it deletes current versions only (S3 adds delete markers).
    """
    from .prune import apply_prune, plan_prune
    from .units import human_age, human_size
    from .storage import Storage

    storage = Storage(storage_config(kwargs))
    plan = plan_prune(storage, kwargs["keep_days"], kwargs["keep_last"],
                      incomplete_grace_seconds=kwargs["incomplete_grace"])
    result = apply_prune(storage, plan, dry_run=kwargs["dry_run"])
    notify.record(deleted=0 if result.dry_run else len(plan.doomed))
    verb = "would delete" if result.dry_run else "deleted"
    passive = "would be deleted" if result.dry_run else "deleted"
    click.echo(f"prune {plan.location}: keep {kwargs['keep_days']:g} days and at least the "
               f"{plan.keep_last} newest complete backup(s)" + (" (dry run)" if result.dry_run else ""))
    for decision in plan.decisions:
        status = decision.status
        action = verb if decision.delete else "keep"
        state = status.state
        click.echo(f"  {action:<12} {status.backup_id}  {human_age(status.age_seconds):>7}  {state:<10}  "
                   f"{decision.reason}")
    doomed = plan.doomed
    objects = sum(len(d.status.objects) for d in doomed)
    summary = (f"{len(doomed)} backup(s) ({objects} objects, {human_size(plan.doomed_bytes())}) {passive}, "
               f"{len(plan.kept)} kept")
    if result.dry_run and doomed:
        summary += "; rerun with --yes to delete"
    click.echo(summary)
    if result.versioned:
        click.echo(f"bucket versioning is {result.versioning}: prune deletes current versions only (S3 adds delete "
                   "markers); previous versions stay until a NoncurrentVersionExpiration lifecycle rule removes "
                   "them, and Object Lock retention still applies")
    elif result.versioning.startswith("unknown"):
        click.echo(f"bucket versioning {result.versioning}: if versioning is on, previous versions stay")

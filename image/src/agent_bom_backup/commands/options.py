"""What every command shares: option groups, value parsers and :func:`operation`, the
one top-level error handler (logging set-up, signals, notifications, exit codes).

Every option has an environment variable (shown in --help); the Helm chart sets
environment variables only.
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

from .. import units
from ..errors import BackupError, ConfigError, ExitCode, Interrupted
from ..log import SECRET_PARAMS, Redactor, event, password_candidates, setup_logging
from ..notify import KINDS, PING_STYLES, Monitor, MonitorConfig
from ..storage import StorageConfig

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


def _duration_option(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    """A duration option (26h, 90m, 2d) in seconds; a bad value is a usage error (exit 2)."""
    return parse_duration(value)

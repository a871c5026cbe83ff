"""``backup`` (the CronJob's command) and ``preflight`` (the helm test)."""

from __future__ import annotations

from typing import Any

import click

from .. import notify
from ..errors import ConfigError
from ..log import event, get_logger
from ..parts import DEFAULT_CONCURRENCY, DEFAULT_GROWTH_INTERVAL, DEFAULT_PART_SIZE, MiB, PartSchedule
from .options import (
    LineSeparated,
    _LineString,
    database_url,
    lock_wait_timeout_option,
    monitor_options,
    operation,
    parse_size,
    pg_bin_dirs,
    pg_client_options,
    storage_config,
    storage_options,
)


#: backup options whose values BackupConfig takes as given, under the same names
_BACKUP_AS_GIVEN = ("compression", "compression_fallback", "tenant_column", "enable_row_security",
                    "upload_concurrency", "pg_bin_dirs_only", "metrics_file")


@click.command()
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
    from ..backup import BackupConfig, run_backup
    from ..resources import memory_budget

    url = database_url()
    storage = storage_config(
        kwargs, sse=kwargs.pop("sse"), kms_key_id=kwargs.pop("kms_key_id"), storage_class=kwargs.pop("storage_class")
    )
    config = BackupConfig(
        database_url=url,
        storage=storage,
        lock_wait_timeout_s=kwargs["lock_wait_timeout"],
        session_settings=_settings(kwargs["session_settings"]),
        part_schedule=PartSchedule(parse_size(kwargs["part_size"], "--part-size"), kwargs["part_growth_interval"]),
        memory_budget=memory_budget(
            parse_size(kwargs["memory_budget"], "--memory-budget") if kwargs["memory_budget"] else None,
            parse_size(kwargs["memory_limit"], "--memory-limit") if kwargs["memory_limit"] else None,
        ),
        pg_bin_dirs=pg_bin_dirs(kwargs),
        exclude_tables=tuple(name.strip() for name in kwargs["exclude_tables"] if name.strip()),
        encrypt_to=tuple(kwargs["encrypt_to"]),
        **{name: kwargs[name] for name in _BACKUP_AS_GIVEN},
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


@click.command()
@storage_options
@click.option("--skip-database", is_flag=True, default=False, help="Check the bucket only.")
@operation
def preflight(**kwargs: Any) -> None:
    """Check that the database and the bucket are reachable with this identity (helm test)."""
    from ..pgconn import ConnInfo, probe_server_major
    from ..storage import Storage

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

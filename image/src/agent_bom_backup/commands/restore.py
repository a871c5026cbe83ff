"""``restore`` and ``verify``: the commands that read a backup back."""

from __future__ import annotations

import os
from typing import Any

import click

from .. import notify
from ..errors import ConfigError
from ..parts import MiB
from ..storage import DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD
from .options import (
    identity_option,
    lock_wait_timeout_option,
    monitor_options,
    operation,
    parse_size,
    pg_bin_dir_option,
    pg_bin_dirs,
    pg_client_options,
    scratch_dir_option,
    storage_config,
    storage_options,
)


#: restore options whose values RestoreConfig takes as given, under the same names
_RESTORE_AS_GIVEN = ("target_url", "clean", "confirm_target", "approval", "operator", "create_missing_roles", "no_owner",
                     "no_privileges", "jobs", "dry_run", "safety_backup_dir", "scratch_dir", "pg_bin_dirs_only",
                     "allow_older", "report_path", "identity_file", "terminate_sessions", "safety_backup_to_bucket")


def _threshold(value: str) -> int | None:
    """--parallel-download-threshold: a size, or off (None)."""
    return None if value.strip().lower() == "off" else parse_size(value, "--parallel-download-threshold")


@click.command()
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
    from ..restore import RestoreConfig, run_restore

    if not kwargs["target_url"]:
        raise ConfigError("no restore target", hint="set AGENT_BOM_RESTORE_POSTGRES_URL (or --target-url)")
    config = RestoreConfig(
        source=kwargs["backup_uri"],
        storage=storage_config(kwargs),
        live_source_url=os.environ.get("AGENT_BOM_POSTGRES_URL") or None,
        parallel_download_threshold=_threshold(kwargs["parallel_download_threshold"]),
        safety_backup=not kwargs["no_safety_backup"],
        pg_bin_dirs=pg_bin_dirs(kwargs),
        lock_wait_timeout_s=kwargs["lock_wait_timeout"],
        **{name: kwargs[name] for name in _RESTORE_AS_GIVEN},
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


@click.command()
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
    from ..errors import VerifyError
    from ..report import exclusion_lines
    from ..units import human_size
    from ..verify import verify_backup

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

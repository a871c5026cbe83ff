"""Operator tooling over the bucket: ``list`` and ``check`` (catalog.py), ``prune``
(prune.py). These commands only parse options and format the results."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import notify
from ..errors import ExitCode
from .options import _duration_option, monitor_options, operation, storage_config, storage_options


@click.command(name="list")
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

    from ..catalog import COMPLETE, INCOMPLETE, STATES, list_backups
    from ..units import human_age, human_size
    from ..storage import Storage

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


@click.command()
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
    from ..catalog import check_freshness
    from ..storage import Storage

    storage = Storage(storage_config(kwargs))
    result = check_freshness(storage, kwargs["max_age"])
    click.echo(result.line())
    if kwargs["show_recipients"]:
        _echo_recipients(storage)
    if not result.ok:
        sys.exit(int(ExitCode.STALE))


def _echo_recipients(storage: Any) -> None:
    """One line per committed backup: the age recipients whose identity restores it."""
    from ..catalog import INCOMPLETE, list_backups

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


@click.command()
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
    from ..prune import apply_prune, plan_prune
    from ..units import human_age, human_size
    from ..storage import Storage

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

"""The ``agent-bom-backup`` command: a thin click layer over the operation modules.

Every option has an environment variable (shown in --help); the Helm chart sets
environment variables only. docs/configuration.md is generated from these
declarations and a test keeps it current.

The group is here; the commands live in :mod:`agent_bom_backup.commands` (``options``:
what they share; ``backup``: backup and preflight; ``restore``: restore and verify;
``catalog``: list, check and prune). The names the CLI module held are importable from it.
"""

from __future__ import annotations

import click

from . import __version__
from .commands.backup import _settings, backup, preflight
from .commands.catalog import _echo_recipients, check, list_command, prune
from .commands.options import (
    F,
    LineSeparated,
    _add_url_password,
    _apply,
    _duration_option,
    _LineString,
    database_url,
    identity_option,
    lock_wait_timeout_option,
    monitor_config,
    monitor_options,
    only_pg_bin_dirs_option,
    operation,
    parse_duration,
    parse_size,
    pg_bin_dir_option,
    pg_bin_dirs,
    pg_client_options,
    scratch_dir_option,
    storage_config,
    storage_options,
)
from .commands.restore import _restore_facts, _threshold, restore, verify

__all__ = [
    "F", "LineSeparated", "_LineString", "_add_url_password", "_apply", "_duration_option", "_echo_recipients",
    "_restore_facts", "_settings", "_threshold", "backup", "check", "database_url", "identity_option",
    "list_command", "lock_wait_timeout_option", "main", "monitor_config", "monitor_options",
    "only_pg_bin_dirs_option", "operation", "parse_duration", "parse_size", "pg_bin_dir_option", "pg_bin_dirs",
    "pg_client_options", "preflight", "prune", "restore", "scratch_dir_option", "storage_config",
    "storage_options", "verify",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agent-bom-backup")
def main() -> None:
    """Back up and restore the agent-bom control-plane PostgreSQL database.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 configuration, 4 preflight,
    5 dump, 6 storage, 7 verification, 8 refused, 9 restore (target untouched),
    10 stale backup, 11 restore failed after changing the target, 143 interrupted.
    """


for _command in (backup, restore, preflight, list_command, verify, check, prune):
    main.add_command(_command)

"""The ``agent-bom-backup`` command: a thin click layer over the operation modules.

Every option has an environment variable (shown in --help); the Helm chart sets
environment variables only. docs/configuration.md is generated from these
declarations and a test keeps it current.

The group is here; the commands live in :mod:`agent_bom_backup.commands` (``options``:
what they share; ``backup``: backup and preflight; ``restore``: restore and verify;
``catalog``: list, check and prune). The names the CLI module held are importable from it
(:func:`__getattr__`).
"""

from __future__ import annotations

from typing import Any

import click

from . import __version__
from .commands import backup as backup_commands
from .commands import catalog as catalog_commands
from .commands import options as shared_options
from .commands import restore as restore_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agent-bom-backup")
def main() -> None:
    """Back up and restore the agent-bom control-plane PostgreSQL database.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 configuration, 4 preflight,
    5 dump, 6 storage, 7 verification, 8 refused, 9 restore (target untouched),
    10 stale backup, 11 restore failed after changing the target, 143 interrupted.
    """


for _command in (backup_commands.backup, restore_commands.restore, backup_commands.preflight,
                 catalog_commands.list_command, restore_commands.verify, catalog_commands.check, catalog_commands.prune):
    main.add_command(_command)


def __getattr__(name: str) -> Any:
    """The names this module held before its commands moved (``from agent_bom_backup.cli
    import parse_size`` keeps working): looked up in the command modules."""
    for module in (shared_options, backup_commands, restore_commands, catalog_commands):
        if name in vars(module):
            return vars(module)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

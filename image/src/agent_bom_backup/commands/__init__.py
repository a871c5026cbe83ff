"""The commands of ``agent-bom-backup`` (registered on the group in :mod:`agent_bom_backup.cli`):
a thin click layer over the operation modules, one module per kind of command."""

"""agent-bom control-plane PostgreSQL backup and restore."""

__version__ = "0.2.0"

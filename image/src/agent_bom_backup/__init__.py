"""agent-bom control-plane PostgreSQL backup and restore."""

__version__ = "0.1.0"

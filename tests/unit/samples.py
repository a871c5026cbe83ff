"""Sample values for the unit tests: manifests as a release writes them, listings as
``Storage.list_backups`` returns them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from agent_bom_backup.manifest import Manifest
from agent_bom_backup.storage import BackupEntry, ObjectInfo, StorageConfig

BACKUP_ID = "agent-bom-20261125T030007Z"
CONFIG = StorageConfig(bucket="agent-bom-prod-backups", prefix="agent-bom/postgres")
#: "now" for ages: three days after BACKUP_ID's stamp, 09:00:07 UTC
NOW = datetime(2026, 11, 28, 9, 0, 7, tzinfo=timezone.utc)


def manifest_data(version: int = 2, backup_id: str = BACKUP_ID, **extra: Any) -> dict[str, Any]:
    """The smallest manifest of format ``version`` that reads, for backup ``backup_id``
    under CONFIG's prefix; ``extra`` replaces or adds top-level fields."""
    keys = CONFIG.keys(backup_id)
    data: dict[str, Any] = {
        "format": "agent-bom-backup-manifest", "format_version": version, "backup_id": backup_id,
        "started_at": "2026-11-25T03:00:07+00:00", "finished_at": "2026-11-25T03:01:00+00:00",
        "snapshot_time": "2026-11-25T03:00:08+00:00",
        "dump": {"key": keys.dump, "size": 100, "sha256": "00", "parts": 1},
        "roles": {"key": keys.roles, "size": 10, "sha256": "11", "parts": 1},
        "source": {"database": "d", "host": "h", "server_version": "15.1", "server_major": 15,
                   "system_identifier": None, "is_standby": False, "replay_timestamp": None, "database_size": 1,
                   "backup_role": "r"},
        "client": {"pg_dump_version": "15.1", "pg_dump_major": 15, "compression": "gzip:1",
                   "compression_note": "", "row_security": False},
        "tenant_column": "team_id", "tables": [], "schema_fingerprint": {}, "schema_fingerprint_sha256": "",
        "extensions": {}, "referenced_roles": {},
    }
    data.update(extra)
    return data


def manifest_json(version: int = 2, **extra: Any) -> str:
    return json.dumps(manifest_data(version, **extra))


def manifest(version: int = 2, **extra: Any) -> Manifest:
    return Manifest.from_json(manifest_json(version, **extra))


def entry(backup_id: str = BACKUP_ID, *kinds: str, size: int = 100, storage_class: str | None = None,
          sizes: dict[str, int] | None = None) -> BackupEntry:
    """A listed backup holding the objects ``kinds`` (dump, roles, manifest, claim); the
    dump (and manifest) in ``storage_class``; dump ``size`` bytes, roles 10, others 1."""
    keys = CONFIG.keys(backup_id)
    default = {"dump": size, "roles": 10, "manifest": 1, "claim": 1, **(sizes or {})}
    objects = {kind: ObjectInfo(getattr(keys, kind), default[kind], NOW,
                                storage_class if kind in ("dump", "manifest") else None) for kind in kinds}
    return BackupEntry(keys, **objects)


COMPLETE_OBJECTS = ("claim", "dump", "roles", "manifest")

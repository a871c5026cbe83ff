"""Helpers of the operator-tooling tests: plant backups with chosen names (ages) in a
bucket by copying a real backup's objects. Running the CLI is :mod:`tests.support.cli`.

A planted backup is byte-for-byte the session's real backup (so its SHA-256 and a
restore of it verify) under another backup id, with a manifest rewritten to name the
new keys; ``manifest_edit`` can then break the manifest on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support import buckets
from tests.support import cli
from devstack.s3server import DEFAULT_REGION, MotoServer


def backup_id_at(moment: datetime) -> str:
    return "agent-bom-" + moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def backup_id_aged(days: float = 0, hours: float = 0, minutes: float = 0) -> str:
    """The id of a backup that started this long ago."""
    return backup_id_at(datetime.now(timezone.utc) - timedelta(days=days, hours=hours, minutes=minutes))


def key(backup_id: str, suffix: str) -> str:
    """The key of backup ``backup_id``'s object ending in ``suffix`` (buckets.DUMP, ROLES or MANIFEST)."""
    return f"{cli.PREFIX}/{backup_id}{suffix}"


@dataclass(frozen=True)
class RealBackup:
    """The session's real backup: its objects' bytes and its manifest."""

    dump: bytes
    roles: bytes
    manifest: dict[str, Any]


class Planter:
    """Writes backups into one bucket under chosen ids."""

    def __init__(self, s3: MotoServer, bucket: str, real: RealBackup) -> None:
        self.client = s3.client()
        self.bucket = bucket
        self.real = real

    def plant(
        self,
        backup_id: str,
        *,
        dump: bool = True,
        roles: bool = True,
        manifest: bool = True,
        manifest_edit: Callable[[dict[str, Any]], None] | None = None,
        dump_bytes: bytes | None = None,
    ) -> str:
        """Write the chosen objects of a backup named ``backup_id``; returns the dump URI."""
        if dump:
            self.put(key(backup_id, buckets.DUMP), self.real.dump if dump_bytes is None else dump_bytes)
        if roles:
            self.put(key(backup_id, buckets.ROLES), self.real.roles)
        if manifest:
            data = json.loads(json.dumps(self.real.manifest))
            data["backup_id"] = backup_id
            data["dump"]["key"] = key(backup_id, buckets.DUMP)
            data["roles"]["key"] = key(backup_id, buckets.ROLES)
            if manifest_edit:
                manifest_edit(data)
            self.put(key(backup_id, buckets.MANIFEST), json.dumps(data).encode())
        return f"s3://{self.bucket}/{key(backup_id, buckets.DUMP)}"

    def put(self, object_key: str, body: bytes) -> None:
        buckets.put_object(self.client, self.bucket, object_key, body)

    def keys(self) -> list[str]:
        return buckets.object_keys(self.client, self.bucket)


def list_json(run: cli.Run) -> list[dict[str, Any]]:
    return list(json.loads(run.stdout)["backups"])


def by_id(backups: list[dict[str, Any]], backup_id: str) -> dict[str, Any]:
    return next(b for b in backups if b["backup_id"] == backup_id)


def region() -> str:
    return DEFAULT_REGION

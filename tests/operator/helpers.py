"""Helpers of the operator-tooling tests: run the CLI as a subprocess and plant backups
with chosen names (ages) in a bucket by copying a real backup's objects.

A planted backup is byte-for-byte the session's real backup (so its SHA-256 and a
restore of it verify) under another backup id, with a manifest rewritten to name the
new keys; ``manifest_edit`` can then break the manifest on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support import tools
from tests.support.s3server import DEFAULT_REGION, MotoServer, dummy_aws_env

PREFIX = "agent-bom/postgres"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUN_TIMEOUT_S = 120


@dataclass(frozen=True)
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """Messages of the JSON log records at error level."""
        lines = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("level") == "error":
                    lines.append(str(record["message"]))
        return lines

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def cli_env(s3: MotoServer, bucket: str, **extra: str) -> dict[str, str]:
    """An explicit environment for ``agent-bom-backup``: the moto endpoint, the bucket,
    JSON logs; nothing of the developer's AWS or AGENT_BOM_* settings."""
    return {
        "PATH": f"{tools.venv_bin_dir()}:{SYSTEM_PATH}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        **dummy_aws_env(),
        "AGENT_BOM_BACKUP_BUCKET": bucket,
        "AGENT_BOM_BACKUP_PREFIX": PREFIX,
        "AGENT_BOM_BACKUP_REGION": DEFAULT_REGION,
        "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url,
        "AGENT_BOM_BACKUP_PATH_STYLE": "true",
        "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
        **extra,
    }


def run_cli(args: Sequence[str], env: dict[str, str], timeout: float = RUN_TIMEOUT_S) -> Run:
    argv = [str(tools.venv_executable("agent-bom-backup")), *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Run(argv, result.returncode, result.stdout, result.stderr)


def backup_id_at(moment: datetime) -> str:
    return "agent-bom-" + moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def backup_id_aged(days: float = 0, hours: float = 0, minutes: float = 0) -> str:
    """The id of a backup that started this long ago."""
    return backup_id_at(datetime.now(timezone.utc) - timedelta(days=days, hours=hours, minutes=minutes))


def key(backup_id: str, suffix: str) -> str:
    return f"{PREFIX}/{backup_id}{suffix}"


DUMP, ROLES, MANIFEST = ".dump", ".roles.sql", ".manifest.json"


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
            self.put(key(backup_id, DUMP), self.real.dump if dump_bytes is None else dump_bytes)
        if roles:
            self.put(key(backup_id, ROLES), self.real.roles)
        if manifest:
            data = json.loads(json.dumps(self.real.manifest))
            data["backup_id"] = backup_id
            data["dump"]["key"] = key(backup_id, DUMP)
            data["roles"]["key"] = key(backup_id, ROLES)
            if manifest_edit:
                manifest_edit(data)
            self.put(key(backup_id, MANIFEST), json.dumps(data).encode())
        return f"s3://{self.bucket}/{key(backup_id, DUMP)}"

    def put(self, object_key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=object_key, Body=body)

    def keys(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(o["Key"] for page in paginator.paginate(Bucket=self.bucket) for o in page.get("Contents", []))


def list_json(run: Run) -> list[dict[str, Any]]:
    return list(json.loads(run.stdout)["backups"])


def by_id(backups: list[dict[str, Any]], backup_id: str) -> dict[str, Any]:
    return next(b for b in backups if b["backup_id"] == backup_id)


def region() -> str:
    return DEFAULT_REGION

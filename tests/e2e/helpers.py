"""Helpers of the end-to-end tests: run the CLI, the restore script and the rendered
CronJob container as subprocesses, read the bucket, describe a database.

Every process gets an explicit environment (nothing of the developer's PG*/AWS*/
AGENT_BOM_* leaks in) and logs JSON lines, which :class:`Run` parses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support import tools
from tests.support.pgcluster import PgCluster
from tests.support.s3server import DEFAULT_REGION, MotoServer, dummy_aws_env
from tests.support.seed import SeedSpec, seed

PREFIX = "agent-bom/postgres"
RESTORE_SCRIPT = tools.repo_root() / "deploy" / "ops" / "restore-postgres-backup.sh"
RUN_TIMEOUT_S = 180
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the runbook's object name
DUMP_KEY = re.compile(r"^agent-bom/postgres/agent-bom-\d{8}T\d{6}Z\.dump$")
#: a small seed: every table and tenant, few rows (keeps dumps and restores quick)
SMALL_SEED = SeedSpec(audit_rows_per_tenant=40, payload_bytes=64)


@dataclass(frozen=True)
class Run:
    """A finished subprocess and its JSON log lines (stderr)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def log(self) -> list[dict[str, Any]]:
        records = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.log if r.get("level") == "error"]

    @property
    def error_message(self) -> str:
        """The one error line's message ('' when there is none)."""
        errors = self.errors
        return str(errors[0]["message"]) if errors else ""

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def base_env(**extra: str) -> dict[str, str]:
    """PATH with the venv first (as the image has /opt/venv/bin), dummy AWS identity;
    ``extra`` adds or overrides variables."""
    return {
        "PATH": f"{tools.venv_bin_dir()}:{SYSTEM_PATH}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        **dummy_aws_env(),
    } | extra


def s3_env(s3: MotoServer, bucket: str, prefix: str = PREFIX, **extra: str) -> dict[str, str]:
    """Environment of a CLI run against ``bucket`` on the moto endpoint; ``extra`` adds or overrides."""
    return base_env(
        AGENT_BOM_BACKUP_BUCKET=bucket,
        AGENT_BOM_BACKUP_PREFIX=prefix,
        AGENT_BOM_BACKUP_REGION=DEFAULT_REGION,
        AGENT_BOM_BACKUP_ENDPOINT_URL=s3.endpoint_url,
        AGENT_BOM_BACKUP_PATH_STYLE="true",
        AGENT_BOM_BACKUP_LOG_FORMAT="json",
    ) | extra


def run(argv: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None,
        timeout: float = RUN_TIMEOUT_S) -> Run:
    args = [str(a) for a in argv]
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    return Run(args, proc.returncode, proc.stdout, proc.stderr)


def cmdlines() -> dict[int, bytes]:
    """/proc/PID/cmdline of every process now (arguments NUL-separated)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


def cli() -> Path:
    return tools.venv_executable("agent-bom-backup")


def backup(env: dict[str, str], *args: str) -> Run:
    """``agent-bom-backup backup``; the database comes from env AGENT_BOM_POSTGRES_URL."""
    return run([cli(), "backup", *args], env)


def restore(env: dict[str, str], uri: str, target_url: str, *args: str) -> Run:
    """``agent-bom-backup restore URI`` with the target in the environment (not argv)."""
    return run([cli(), "restore", uri, *args], {**env, "AGENT_BOM_RESTORE_POSTGRES_URL": target_url})


def restore_script(env: dict[str, str], uri: str, target_url: str, region: str, *args: str,
                   cwd: Path | None = None) -> Run:
    """The runbook's ``deploy/ops/restore-postgres-backup.sh URI URL REGION [OPTIONS...]``."""
    return run([RESTORE_SCRIPT, uri, target_url, region, *args], env, cwd=cwd)


# ------------------------------------------------------------------ pods
def container_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment the kubelet gives ``container``: plain values, and ``secretKeyRef``
    values looked up in ``secrets`` (Secret name -> data). A reference to a missing Secret
    or key fails, as the pod would (CreateContainerConfigError)."""
    assert "envFrom" not in container, "envFrom is not resolved by this helper"
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        assert ref is not None, f"unsupported env source for {item['name']}: {item.get('valueFrom')}"
        assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]], \
            f"{item['name']}: Secret {ref['name']} has no key {ref['key']}"
        env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def run_container(container: dict[str, Any], secrets: dict[str, dict[str, str]], cwd: Path) -> Run:
    """Run the container's command and args as the kubelet would, with the image's PATH
    (the venv first, like /opt/venv/bin in the image) and LANG, and nothing else inherited."""
    env = {"PATH": f"{tools.venv_bin_dir()}:{SYSTEM_PATH}", "LANG": "C.UTF-8"} | container_env(container, secrets)
    return run([*container.get("command", []), *container.get("args", [])], env, cwd=cwd)


# ------------------------------------------------------------------ bucket
@contextlib.contextmanager
def fresh_bucket(s3: MotoServer, prefix: str) -> Iterator[str]:
    """A new bucket with a unique valid name, deleted (with its objects and uploads) afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(name)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            s3.delete_bucket(name)


def object_keys(s3: MotoServer, bucket: str) -> list[str]:
    response = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in response.get("Contents", []))


def open_uploads(s3: MotoServer, bucket: str) -> list[dict[str, Any]]:
    return list(s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def get_object(s3: MotoServer, bucket: str, key: str) -> bytes:
    return bytes(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def put_object(s3: MotoServer, bucket: str, key: str, body: bytes) -> None:
    s3.client().put_object(Bucket=bucket, Key=key, Body=body)


_REQUEST_LINE = re.compile(r'"(?P<method>PUT|POST) /(?P<bucket>[^/ ]+)/(?P<key>[^? ]+)(?:\?(?P<query>\S*))? HTTP/[\d.]+" 2\d\d ')


def completed_objects(s3: MotoServer, bucket: str, key_prefix: str) -> list[str]:
    """Keys under ``key_prefix`` in the order their objects were completed (a PutObject or
    a CompleteMultipartUpload served by moto), read from moto_server's request log."""
    keys = []
    for line in s3.log_file.read_text(errors="replace").splitlines():
        match = _REQUEST_LINE.search(line)
        if not match or match["bucket"] != bucket or not match["key"].startswith(key_prefix):
            continue
        query = match["query"] or ""
        if (match["method"] == "PUT" and not query) or (match["method"] == "POST" and query.startswith("uploadId=")):
            keys.append(match["key"])
    return keys


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_key(dump_key: str) -> str:
    return dump_key.removesuffix(".dump") + ".manifest.json"


def roles_key(dump_key: str) -> str:
    return dump_key.removesuffix(".dump") + ".roles.sql"


@dataclass(frozen=True)
class Backup:
    """A backup the CLI wrote: where it is and what its manifest says."""

    bucket: str
    key: str
    manifest: dict[str, Any]
    run: Run

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def keys(self) -> tuple[str, str, str]:
        """dump, roles and manifest keys."""
        return self.key, roles_key(self.key), manifest_key(self.key)

    def uri_in(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key}"


def take_backup(s3: MotoServer, bucket: str, database_url: str, *args: str, **env: str) -> Backup:
    """Run ``backup``, insist on success and return what it wrote."""
    result = backup(s3_env(s3, bucket, AGENT_BOM_POSTGRES_URL=database_url, **env), *args)
    assert result.returncode == 0, str(result)
    uri = result.stdout.strip().splitlines()[-1]
    key = uri.removeprefix(f"s3://{bucket}/")
    manifest = json.loads(get_object(s3, bucket, manifest_key(key)))
    return Backup(bucket, key, manifest, result)


def copy_backup(s3: MotoServer, backup: Backup, bucket: str, parts: Sequence[str] = ("dump", "roles", "manifest")) -> None:
    """Copy some of ``backup``'s objects to the same keys in ``bucket``."""
    client = s3.client()
    for part, key in zip(("dump", "roles", "manifest"), backup.keys):
        if part in parts:
            client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": backup.bucket, "Key": key})


# ------------------------------------------------------------------ databases
def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def new_database(cluster: PgCluster, prefix: str) -> str:
    name = unique_name(prefix)
    cluster.create_database(name)
    return name


def seeded_database(cluster: PgCluster, prefix: str, spec: SeedSpec = SMALL_SEED) -> tuple[str, dict[str, int]]:
    """A new database with the synthetic control-plane data; returns (name, audit rows per tenant)."""
    name = new_database(cluster, prefix)
    with psycopg.connect(cluster.conninfo(name), autocommit=True) as conn:
        rows = seed(conn, spec)
    return name, rows


def connect(cluster: PgCluster, dbname: str) -> psycopg.Connection:
    """Superuser connection over the socket, autocommit."""
    return psycopg.connect(cluster.conninfo(dbname), autocommit=True)


def table_counts(cluster: PgCluster, dbname: str) -> dict[str, int]:
    """count(*) of every user table, as the superuser (RLS does not apply to it)."""
    with connect(cluster, dbname) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{name}": int(conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()[0])
            for schema, name in tables
        }


def tenant_counts(cluster: PgCluster, dbname: str, table: str) -> dict[str, int]:
    with connect(cluster, dbname) as conn:
        rows = conn.execute(
            sql.SQL("SELECT team_id, count(*) FROM {} GROUP BY 1").format(sql.Identifier("public", table))
        ).fetchall()
    return {team: int(n) for team, n in rows}


def database_state(cluster: PgCluster, dbname: str) -> dict[str, Any]:
    """What a refusal must leave as it was: relations, row counts, policies, the cluster's roles."""
    with connect(cluster, dbname) as conn:
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
            "ORDER BY 1, 2"
        ).fetchall()
        policies = conn.execute(
            "SELECT tablename, policyname, roles::text FROM pg_policies ORDER BY 1, 2"
        ).fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall()
    return {
        "relations": relations,
        "counts": table_counts(cluster, dbname),
        "policies": policies,
        "roles": [r[0] for r in roles],
    }

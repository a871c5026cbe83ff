"""Helpers of the reliability suite: run the real CLI as the CronJob would (explicit
environment, JSON logs), strike while it runs, and look at what it left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support import tools
from tests.support.pgcluster import PgCluster
from tests.support.s3server import DEFAULT_REGION, dummy_aws_env
from tests.support.seed import SeedSpec, seed

PREFIX = "agent-bom/postgres"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUN_TIMEOUT_S = 120
SMALL_SEED = SeedSpec(audit_rows_per_tenant=30, payload_bytes=64)
#: incompressible bytes in the "large" database: with --compression none its dump is
#: about twice this (bytea is dumped as hex), i.e. ~8 parts of 5 MiB
BLOB_BYTES = 20 * 1024 * 1024
BLOB_ROW_BYTES = 256 * 1024
PART = "5MiB"


def cli() -> Path:
    return tools.venv_executable("agent-bom-backup")


def base_env(**extra: str) -> dict[str, str]:
    """The job's environment: the venv first on PATH (as in the image), moto's dummy identity."""
    return {
        "PATH": f"{tools.venv_bin_dir()}:{SYSTEM_PATH}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        **dummy_aws_env(),
        **extra,
    }


def job_env(endpoint: str, bucket: str, **extra: str) -> dict[str, str]:
    """The CronJob's environment for ``bucket`` on ``endpoint``; ``extra`` overrides."""
    return base_env(**{
        "AGENT_BOM_BACKUP_BUCKET": bucket,
        "AGENT_BOM_BACKUP_PREFIX": PREFIX,
        "AGENT_BOM_BACKUP_REGION": DEFAULT_REGION,
        "AGENT_BOM_BACKUP_ENDPOINT_URL": endpoint,
        "AGENT_BOM_BACKUP_PATH_STYLE": "true",
        "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
        **extra,
    })


@dataclass
class Run:
    """A finished CLI run and its JSON log lines (stderr)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

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
        errors = self.errors
        return str(errors[0]["message"]) if errors else ""

    def __str__(self) -> str:
        return (f"{' '.join(self.argv[1:3])}: exit {self.returncode} after {self.seconds:.1f}s\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


class Job:
    """The CLI as a running process, so a test can strike while it works."""

    def __init__(self, args: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None) -> None:
        self.argv = [str(a) for a in args]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def children(self, name: str | None = None) -> list[int]:
        """PIDs of this job's child processes (optionally only those called ``name``)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1: stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == self.pid and (name is None or comm == name):
                found.append(int(entry.name))
        return found

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> Run:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            raise AssertionError(f"{' '.join(self.argv[:3])} did not finish within {timeout}s\n{stderr}") from None
        return Run(self.argv, self.process.returncode, stdout, stderr, time.monotonic() - self.started)


def run(args: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None,
        timeout: float = RUN_TIMEOUT_S) -> Run:
    return Job(args, env, cwd).wait(timeout)


def backup(env: dict[str, str], *args: str) -> Run:
    return run([cli(), "backup", *args], env)


def restore(env: dict[str, str], uri: str, target_url: str, *args: str) -> Run:
    """``agent-bom-backup restore URI`` with the target in the environment, not argv."""
    return run([cli(), "restore", uri, *args], {**env, "AGENT_BOM_RESTORE_POSTGRES_URL": target_url})


# ---------------------------------------------------------------------- the bucket
def object_keys(client: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def open_uploads(client: Any, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def get_object(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_key(dump_key: str) -> str:
    return dump_key.removesuffix(".dump") + ".manifest.json"


def complete_backups_are_intact(client: Any, bucket: str) -> list[str]:
    """Every dump that has a manifest matches it (size and SHA-256); returns those dumps."""
    keys = object_keys(client, bucket)
    dumps = [k for k in keys if k.endswith(".dump") and manifest_key(k) in keys]
    for dump in dumps:
        manifest = json.loads(get_object(client, bucket, manifest_key(dump)))
        data = get_object(client, bucket, dump)
        assert manifest["dump"]["key"] == dump
        assert (len(data), sha256(data)) == (manifest["dump"]["size"], manifest["dump"]["sha256"]), dump
    return dumps


# ---------------------------------------------------------------------- databases
def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def connect(cluster: PgCluster, dbname: str) -> psycopg.Connection:
    return psycopg.connect(cluster.conninfo(dbname), autocommit=True)


def new_database(cluster: PgCluster, prefix: str) -> str:
    name = unique(prefix)
    cluster.create_database(name)
    return name


def seeded_database(cluster: PgCluster, prefix: str, spec: SeedSpec = SMALL_SEED) -> str:
    name = new_database(cluster, prefix)
    with connect(cluster, name) as conn:
        seed(conn, spec)
    return name


def add_blobs(cluster: PgCluster, dbname: str, total: int = BLOB_BYTES) -> None:
    """A table of incompressible bytes, so a dump with compression none is large and a
    slowed upload leaves pg_dump mid-stream for seconds."""
    with connect(cluster, dbname) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, team_id text, payload bytea)")
        conn.execute("ALTER TABLE blobs ALTER payload SET STORAGE EXTERNAL")
        with conn.cursor().copy("COPY blobs (id, team_id, payload) FROM STDIN") as copy:
            for index in range(total // BLOB_ROW_BYTES):
                copy.write_row((index, "team-alpha", os.urandom(BLOB_ROW_BYTES)))


def database_digest(cluster: PgCluster, dbname: str) -> str:
    """A digest of everything a failed or refused restore must leave as it was: relations,
    every row of every table, policies, and the cluster's roles."""
    digest = hashlib.sha256()
    with connect(cluster, dbname) as conn:
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
            "ORDER BY 1, 2"
        ).fetchall()
        digest.update(repr(relations).encode())
        for schema, name, kind in relations:
            if kind != "r":
                continue
            row = conn.execute(
                sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
                .format(sql.Identifier(schema, name))
            ).fetchone()
            digest.update(repr((schema, name, row)).encode())
        digest.update(repr(conn.execute("SELECT tablename, policyname, roles::text, qual FROM pg_policies ORDER BY 1, 2").fetchall()).encode())
        digest.update(repr(conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall()).encode())
    return digest.hexdigest()


def processes_with(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found

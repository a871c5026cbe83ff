"""Run ``agent-bom-backup`` as the CronJob would, and look at what it leaves behind.

Shared by the suites that drive the real CLI (compat, e2e, reliability, operator). Every
process gets an explicit environment (:func:`base_env`, :func:`job_env`: nothing of the
developer's PG*/AWS*/AGENT_BOM_* leaks in) and logs JSON lines, which :class:`Run` parses.

* processes: :func:`run_cli`, :func:`backup`, :func:`restore`, :func:`restore_script`,
  :func:`run` (any program), :class:`Job` (one to strike while it works),
  :func:`container_env` (what a rendered container is given), :func:`cmdlines` and
  :func:`processes_with` (what runs now);
* the bucket: :func:`fresh_bucket`, :func:`object_keys`, :func:`open_uploads`,
  :func:`get_object`, the backup's object names (:func:`backup_keys`), :func:`read_manifest`,
  :class:`Backup` (:func:`take_backup`, :func:`copy_backup`);
* databases: :func:`unique_name`, :func:`new_database`, :func:`seeded_database`
  (:class:`Database`), :func:`connect`, :func:`user_relations`.

The S3 endpoint that misbehaves on cue is :class:`tests.support.s3proxy.S3Proxy`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from agent_bom_backup.manifest import backup_time
from botocore.client import BaseClient

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.podrun import resource_field_value
from devstack.rgw import RgwServer
from devstack.s3server import DEFAULT_REGION, MotoServer, dummy_aws_env
from devstack.seed import SeedSpec, seed

PREFIX = "agent-bom/postgres"
RESTORE_SCRIPT = tools.repo_root() / "deploy" / "ops" / "restore-postgres-backup.sh"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: how long a run may take before it counts as hung (killed, the test fails)
RUN_TIMEOUT_S = 300
#: the suffixes of a backup's three objects, and of the claim that took its id (written
#: first, kept afterwards: a failed run leaves its claim, which looks like no backup)
DUMP, ROLES, MANIFEST, CLAIM = ".dump", ".roles.sql", ".manifest.json", ".claim"
#: a small seed: every table and tenant, few rows (keeps dumps and restores quick)
SMALL_SEED = SeedSpec(audit_rows_per_tenant=40, payload_bytes=64)


# ------------------------------------------------------------------ environments
def base_env(**extra: str) -> dict[str, str]:
    """PATH with the venv first (as the image has /opt/venv/bin), moto's dummy AWS identity;
    ``extra`` adds or overrides variables."""
    return {
        "PATH": f"{tools.venv_bin_dir()}:{SYSTEM_PATH}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        **dummy_aws_env(),
        **extra,
    }


def job_env(endpoint: str, bucket: str, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The CronJob's environment: ``bucket`` on the S3 ``endpoint``, the database to back
    up (when given), JSON logs; ``extra`` adds or overrides variables."""
    job = {
        "AGENT_BOM_BACKUP_BUCKET": bucket,
        "AGENT_BOM_BACKUP_PREFIX": PREFIX,
        "AGENT_BOM_BACKUP_REGION": DEFAULT_REGION,
        "AGENT_BOM_BACKUP_ENDPOINT_URL": endpoint,
        "AGENT_BOM_BACKUP_PATH_STYLE": "true",
        "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
    }
    if database_url is not None:
        job["AGENT_BOM_POSTGRES_URL"] = database_url
    return base_env(**{**job, **extra})


def container_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment the kubelet gives ``container``: plain values, ``secretKeyRef``
    values looked up in ``secrets`` (Secret name -> data), and ``resourceFieldRef`` values
    from the container's resources. A reference to a missing Secret or key fails, as the
    pod would (CreateContainerConfigError)."""
    assert "envFrom" not in container, "envFrom is not resolved by this helper"
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        resource = item.get("valueFrom", {}).get("resourceFieldRef")
        if resource is not None:
            env[item["name"]] = resource_field_value(container, resource)
            continue
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        assert ref is not None, f"unsupported env source for {item['name']}: {item.get('valueFrom')}"
        assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]], \
            f"{item['name']}: Secret {ref['name']} has no key {ref['key']}"
        env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


# ------------------------------------------------------------------ processes
def _command(argv: Sequence[str]) -> str:
    """The program and its first argument (e.g. ``agent-bom-backup backup``), for messages:
    later arguments may hold a password."""
    return " ".join([Path(argv[0]).name, *argv[1:2]])


@dataclass(frozen=True)
class Run:
    """A finished process and its JSON log lines (stderr)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def log(self) -> list[dict[str, Any]]:
        records = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.log if r.get("level") == "error"]

    @property
    def error_message(self) -> str:
        """The first error line's message ('' when there is none)."""
        errors = self.errors
        return str(errors[0]["message"]) if errors else ""

    @property
    def uri(self) -> str:
        """The last line of stdout: what ``backup`` prints, the dump's URI."""
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def __str__(self) -> str:
        return (f"{_command(self.argv)}: exit {self.returncode} after {self.seconds:.1f}s\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


class Job:
    """A process running in the background, so a test can strike while it works."""

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

    def kill(self) -> None:
        """SIGKILL the process if it still runs, and reap it."""
        if self.running():
            self.process.kill()
            self.process.wait()

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> Run:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            raise AssertionError(f"{_command(self.argv)} did not finish within {timeout}s\n{stderr}") from None
        return Run(self.argv, self.process.returncode, stdout, stderr, time.monotonic() - self.started)


def run(argv: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None,
        timeout: float = RUN_TIMEOUT_S) -> Run:
    """Run a program to its end (stdin closed) and capture what it printed."""
    return Job(argv, env, cwd).wait(timeout)


def executable() -> Path:
    """The ``agent-bom-backup`` console script of the bootstrap's venv."""
    return tools.venv_executable("agent-bom-backup")


def run_cli(args: Sequence[str], env: dict[str, str], cwd: Path | None = None,
            timeout: float = RUN_TIMEOUT_S) -> Run:
    """``agent-bom-backup ARGS...``."""
    return run([executable(), *args], env, cwd, timeout)


def backup(env: dict[str, str], *args: str, timeout: float = RUN_TIMEOUT_S) -> Run:
    """``agent-bom-backup backup``; the database comes from env AGENT_BOM_POSTGRES_URL."""
    return run_cli(["backup", *args], env, timeout=timeout)


def restore(env: dict[str, str], uri: str, target_url: str, *args: str) -> Run:
    """``agent-bom-backup restore URI`` with the target in the environment (not argv)."""
    return run_cli(["restore", uri, *args], {**env, "AGENT_BOM_RESTORE_POSTGRES_URL": target_url})


def restore_script(env: dict[str, str], uri: str, target_url: str, region: str, *args: str,
                   cwd: Path | None = None) -> Run:
    """The runbook's ``deploy/ops/restore-postgres-backup.sh URI URL REGION [OPTIONS...]``."""
    return run([RESTORE_SCRIPT, uri, target_url, region, *args], env, cwd=cwd)


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


def processes_with(text: str) -> dict[int, str]:
    """PID -> command line (arguments space-separated) of the running processes whose
    command line contains ``text``."""
    lines = {pid: raw.replace(b"\0", b" ").decode(errors="replace") for pid, raw in cmdlines().items()}
    return {pid: line for pid, line in lines.items() if text in line}


# ------------------------------------------------------------------ the bucket
def unique_bucket_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@contextlib.contextmanager
def fresh_bucket(s3: MotoServer | RgwServer, prefix: str, region: str = DEFAULT_REGION) -> Iterator[str]:
    """A new bucket with a unique valid name, deleted (with its objects and uploads) afterwards."""
    name = s3.create_bucket(unique_bucket_name(prefix), region=region)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):  # a test may have deleted it or reset moto
            s3.delete_bucket(name)


def object_keys(client: BaseClient, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def open_uploads(client: BaseClient, bucket: str) -> list[dict[str, Any]]:
    """The bucket's multipart uploads that were neither completed nor aborted."""
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def open_upload_keys(client: BaseClient, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in open_uploads(client, bucket))


def get_object(client: BaseClient, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_object(client: BaseClient, bucket: str, key: str, body: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def roles_key(dump_key: str) -> str:
    return dump_key.removesuffix(DUMP) + ROLES


def manifest_key(dump_key: str) -> str:
    return dump_key.removesuffix(DUMP) + MANIFEST


def claim_key(dump_key: str) -> str:
    return dump_key.removesuffix(DUMP) + CLAIM


def without_claims(keys: Sequence[str]) -> list[str]:
    """``keys`` without claim objects: what could make up a backup."""
    return [k for k in keys if not k.endswith(CLAIM)]


def claims(keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k.endswith(CLAIM)]


def read_manifest(client: BaseClient, bucket: str, dump_key: str) -> dict[str, Any]:
    """The manifest of the backup whose dump is ``dump_key``."""
    return dict(json.loads(get_object(client, bucket, manifest_key(dump_key))))


def backup_keys(dump_key: str) -> tuple[str, str, str]:
    """The dump, roles and manifest keys of the backup whose dump is ``dump_key``."""
    return dump_key, roles_key(dump_key), manifest_key(dump_key)


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
        return backup_keys(self.key)

    @property
    def claim_key(self) -> str:
        """The claim object that took the backup id (it stays after the backup)."""
        return claim_key(self.key)

    def uri_in(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key}"


#: bucket -> the start second (epoch) of the newest backup take_backup wrote into it
_newest_backup_second: dict[str, int] = {}


def take_backup(s3: MotoServer, bucket: str, database_url: str, *args: str, **env: str) -> Backup:
    """Run ``backup`` of ``database_url`` into ``bucket``, insist on success and return what
    it wrote. A backup id is its start second, and a second backup in the same second takes
    the next second's id (the failure-mode table tests that), so a backup into a bucket that
    already got one this second starts in the next: tests expect an id from its own start."""
    newest = _newest_backup_second.get(bucket)
    if newest is not None and time.time() < newest + 1:
        time.sleep(newest + 1 - time.time() + 0.01)
    result = backup(job_env(s3.endpoint_url, bucket, database_url, **env), *args)
    assert result.returncode == 0, str(result)
    key = result.uri.removeprefix(f"s3://{bucket}/")
    taken = Backup(bucket, key, read_manifest(s3.client(), bucket, key), result)
    started = backup_time(taken.manifest["backup_id"])
    assert started is not None, taken.manifest["backup_id"]
    _newest_backup_second[bucket] = int(started.timestamp())
    return taken


def copy_backup(client: BaseClient, backup: Backup, bucket: str,
                parts: Sequence[str] = ("dump", "roles", "manifest")) -> None:
    """Copy some of ``backup``'s objects to the same keys in ``bucket``."""
    for part, key in zip(("dump", "roles", "manifest"), backup.keys):
        if part in parts:
            client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": backup.bucket, "Key": key})


# ------------------------------------------------------------------ databases
def unique_name(prefix: str) -> str:
    """``prefix_`` and 8 random hex digits: a database, role or file name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def connect(cluster: PgCluster, dbname: str) -> psycopg.Connection:
    """Superuser connection over the socket, autocommit."""
    return psycopg.connect(cluster.conninfo(dbname), autocommit=True)


def blob_database(cluster: PgCluster, prefix: str, mib: int) -> Database:
    """A new database holding ~``mib`` MiB of row data in one table (no roles or tenants):
    a dump of about that size with compression none."""
    name = new_database(cluster, prefix)
    cluster.run_sql("CREATE TABLE blob AS SELECT g AS id, repeat(md5(g::text), 32) AS body "
                    f"FROM generate_series(1, {mib * 1024}) g", name)
    return Database(cluster, name, {})


def new_database(cluster: PgCluster, prefix: str) -> str:
    """A new empty database with a unique name; returns the name."""
    name = unique_name(prefix)
    cluster.create_database(name)
    return name


def backup_and_restore(env: dict[str, str], cluster: PgCluster,
                       prepare_target: Callable[[str], None] | None = None) -> Run:
    """Back up with the job's ``env``, then restore that backup into a new empty database of
    ``cluster`` (handed to ``prepare_target`` first); the restore's run."""
    uri = backup(env).uri
    target = new_database(cluster, "restore")
    if prepare_target is not None:
        prepare_target(target)
    return restore(env, uri, cluster.superuser_url(target))


def user_relations(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(schema, name, relkind) of every relation outside the system schemas, in order."""
    return conn.execute(
        "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
        "ORDER BY 1, 2"
    ).fetchall()


@dataclass(frozen=True)
class Database:
    """A database on a cluster (e.g. a backup's source); ``audit_rows`` is what the seed
    put in audit_log per tenant."""

    cluster: PgCluster
    name: str
    audit_rows: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.cluster.superuser_url(self.name)


def seeded_database(cluster: PgCluster, prefix: str, spec: SeedSpec = SMALL_SEED) -> Database:
    """A new database holding the synthetic control-plane data (:func:`devstack.seed.seed`)."""
    name = new_database(cluster, prefix)
    with connect(cluster, name) as conn:
        rows = seed(conn, spec)
    return Database(cluster, name, rows)

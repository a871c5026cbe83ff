"""Run ``agent-bom-backup`` as the CronJob would, and the backups it writes.

Shared by the suites that drive the real CLI (compat, e2e, reliability, operator). Every
process gets an explicit environment (:func:`base_env`, :func:`job_env`: nothing of the
developer's PG*/AWS*/AGENT_BOM_* leaks in) and logs JSON lines, which :class:`Run` parses.

* processes: :func:`run_cli`, :func:`backup`, :func:`restore`, :func:`restore_script`,
  :func:`backup_and_restore`, :func:`run` (any program), :class:`Job` (one to strike while
  it works), :func:`container_env` (what a rendered container is given), :func:`cmdlines`
  and :func:`processes_with` (what runs now);
* backups: :class:`Backup` (:func:`take_backup`, :func:`copy_backup`).

The bucket and a backup's object names are :mod:`tests.support.buckets`; databases are
:mod:`tests.support.postgres`; the S3 endpoint that misbehaves on cue is
:class:`tests.support.s3proxy.S3Proxy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_bom_backup.manifest import backup_time
from botocore.client import BaseClient

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.podrun import resource_field_value
from devstack.s3server import DEFAULT_REGION, MotoServer, dummy_aws_env
from tests.support.buckets import backup_keys, claim_key, read_manifest
from tests.support.postgres import new_database

PREFIX = "agent-bom/postgres"
RESTORE_SCRIPT = tools.repo_root() / "deploy" / "ops" / "restore-postgres-backup.sh"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: how long a run may take before it counts as hung (killed, the test fails)
RUN_TIMEOUT_S = 300


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


def backup_and_restore(env: dict[str, str], cluster: PgCluster,
                       prepare_target: Callable[[str], None] | None = None) -> Run:
    """Back up with the job's ``env``, then restore that backup into a new empty database of
    ``cluster`` (handed to ``prepare_target`` first); the restore's run."""
    uri = backup(env).uri
    target = new_database(cluster, "restore")
    if prepare_target is not None:
        prepare_target(target)
    return restore(env, uri, cluster.superuser_url(target))

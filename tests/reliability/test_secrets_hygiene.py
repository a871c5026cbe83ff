"""Secrets stay secret: not in any process's argv while a backup, a restore and the
runbook's restore script run; not in logs, the restore report or the manifest; not in
the rendered chart (secrets are referenced, never inlined)."""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import tools
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster, free_port
from devstack.s3server import MotoServer

CHART = tools.repo_root() / "deploy" / "helm" / "agent-bom"
#: user:password@ in any URL
CREDENTIAL_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@")
#: distinctive S3 credentials (moto accepts any while IAM is off)
S3_SECRET = f"s3-secret-{uuid.uuid4().hex}"
S3_KEY_ID = f"AKIARELIABILITY{uuid.uuid4().hex[:8].upper()}"


class ArgvScanner:
    """Reads every process's ``/proc/PID/cmdline`` in a loop while the runs happen."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.hits: dict[tuple[int, str], str] = {}  # (pid, cmdline) -> the secret it carried
        self.seen: set[str] = set()  # basenames of argv[0] seen
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="argv-scanner", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid, raw in cli.cmdlines().items():
                if not raw:
                    continue
                argv = raw.rstrip(b"\0").split(b"\0")
                names = [Path(a.decode(errors="replace")).name for a in argv[:3]]
                self.seen.add(names[0])
                if names[0].startswith(("python", "bash", "sh", "env")) and len(names) > 1:
                    self.seen.update(names[1:])  # the script an interpreter runs
                text = raw.replace(b"\0", b" ").decode(errors="replace")
                for secret in self.secrets:
                    if secret in text:
                        self.hits[(pid, text)] = secret
            self.sweeps += 1

    def __enter__(self) -> ArgvScanner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Hygiene:
    password: str
    scanner: ArgvScanner
    runs: dict[str, cli.Run] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    manifest: str = ""


@pytest.fixture(scope="module")
def hygiene(s3: MotoServer, reliability_bucket: str, small_source: postgres.Database, pg15: PgCluster,
            tmp_root: Path) -> Iterator[Hygiene]:
    password = pg15.superuser_password
    s3_credentials = {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    work = Path(tempfile.mkdtemp(prefix="hygiene-", dir=tmp_root))
    env = {**cli.job_env(s3.endpoint_url, reliability_bucket), **s3_credentials}
    targets = [postgres.new_database(pg15, "rel_hyg") for _ in range(3)]
    result = Hygiene(password, ArgvScanner([password, S3_SECRET]))
    with result.scanner:
        backup = cli.backup({**env, "AGENT_BOM_POSTGRES_URL": small_source.url})
        result.runs["backup"] = backup
        uri = backup.uri
        key = uri.removeprefix(f"s3://{reliability_bucket}/")
        result.manifest = buckets.get_object(s3.client(), reliability_bucket, buckets.manifest_key(key)).decode()
        result.runs["backup of an unreachable database"] = cli.backup(
            {**env, "AGENT_BOM_POSTGRES_URL": small_source.url.replace(f":{pg15.port}/", f":{free_port()}/")})
        # the CLI, the target URL (with its password) in the environment
        report = work / "restore.json"
        result.runs["restore"] = cli.restore(env, uri, pg15.superuser_url(targets[0]), "--report", str(report))
        result.reports["restore"] = report.read_text() if report.exists() else ""
        # the runbook's script, as the docs recommend: a password-less URL plus PGPASSWORD
        report = work / "script.json"
        result.runs["restore script, PGPASSWORD"] = cli.restore_script(
            {**env, "PGPASSWORD": password}, uri, pg15.url(targets[1]), "us-east-1", "--report", str(report), cwd=work)
        result.reports["restore script, PGPASSWORD"] = report.read_text() if report.exists() else ""
        # the runbook's script with the password in the positional URL
        report = work / "script-url.json"
        result.runs["restore script, password in URL"] = cli.restore_script(
            env, uri, pg15.superuser_url(targets[2]), "us-east-1", "--report", str(report), cwd=work)
        result.reports["restore script, password in URL"] = report.read_text() if report.exists() else ""
        time.sleep(0.05)
    yield result
    for target in targets:
        pg15.run_sql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


RUNS = ["backup", "backup of an unreachable database", "restore", "restore script, PGPASSWORD",
        "restore script, password in URL"]
EXPECTED_EXIT = {"backup of an unreachable database": 4}


@pytest.mark.parametrize("name", RUNS)
def test_run_ends_as_expected(hygiene: Hygiene, name: str) -> None:
    run = hygiene.runs[name]
    assert run.returncode == EXPECTED_EXIT.get(name, 0), str(run)


def test_scanner_saw_the_processes_that_matter(hygiene: Hygiene) -> None:
    """The scan is not vacuous: it caught the CLI and the client programs while they ran."""
    assert {"agent-bom-backup", "pg_dump", "pg_restore"} <= hygiene.scanner.seen


def test_no_process_started_by_the_job_carries_a_secret_in_argv(hygiene: Hygiene) -> None:
    """The one allowed exception: the restore script's own argv while it holds a password
    passed positionally (it exports the URL and execs the CLI; the docs recommend PGPASSWORD)."""
    offenders = [cmd for (_, cmd) in hygiene.scanner.hits if "restore-postgres-backup.sh" not in cmd]
    assert offenders == []


@pytest.mark.parametrize("name", RUNS)
def test_output_holds_no_secret(hygiene: Hygiene, name: str) -> None:
    run = hygiene.runs[name]
    text = run.stdout + run.stderr
    assert hygiene.password not in text
    assert S3_SECRET not in text
    assert CREDENTIAL_URL.findall(text) == []


@pytest.mark.parametrize("name", ["restore", "restore script, PGPASSWORD", "restore script, password in URL"])
def test_restore_report_holds_no_secret(hygiene: Hygiene, name: str) -> None:
    report = hygiene.reports[name]
    assert report
    assert hygiene.password not in report
    assert S3_SECRET not in report
    assert CREDENTIAL_URL.findall(report) == []


def test_manifest_holds_no_secret(hygiene: Hygiene) -> None:
    manifest = hygiene.manifest
    assert manifest
    assert hygiene.password not in manifest
    assert CREDENTIAL_URL.findall(manifest) == []


# ------------------------------------------------------------------ the rendered chart
SECRET_ENV = {"AGENT_BOM_POSTGRES_URL", "AGENT_BOM_RESTORE_POSTGRES_URL", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD", "AGENT_BOM_VERIFY_SCRATCH_URL",
              # notification URLs carry tokens; the Pushgateway's credentials
              "AGENT_BOM_BACKUP_PING_URL", "AGENT_BOM_BACKUP_WEBHOOK_URL", "AGENT_BOM_BACKUP_PUSHGATEWAY_PASSWORD",
              "AGENT_BOM_BACKUP_PUSHGATEWAY_AUTHORIZATION"}
CHART_VALUES: dict[str, Any] = {"controlPlane": {"backup": {
    "enabled": True,
    "destination": {
        "bucket": "agent-bom-prod-backups", "prefix": "agent-bom/postgres", "bucketRegion": "us-east-1",
        "encryption": {"enabled": True, "mode": "aws:kms", "kmsKeyId": "alias/agent-bom-backups"},
        "staticCredentials": {"enabled": True, "existingSecret": "agent-bom-s3",
                              "sessionTokenKey": "AWS_SESSION_TOKEN"},
    },
    "database": {"existingSecret": "agent-bom-postgres"},
    "restoreDrill": {"enabled": True, "target": {"existingSecret": "agent-bom-scratch-db",
                                                 "database": "agent_bom_drill"},
                     "staticCredentialsSecret": "agent-bom-drill-s3"},
    "restore": {"enabled": True, "target": {"existingSecret": "agent-bom-restore-target"},
                "staticCredentialsSecret": "agent-bom-restore-s3"},
    "retentionDays": 30,
    "retention": {"staticCredentialsSecret": "agent-bom-prune"},
    "helmTest": {"enabled": True},
    "metrics": {"pushgateway": {"url": "http://pushgateway.monitoring:9091", "existingSecret": "agent-bom-pgw"}},
    "notify": {"existingSecret": "agent-bom-notify"},
}}}


def _containers(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    yield from value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(document)


@pytest.fixture(scope="module")
def rendered(tmp_root: Path) -> tuple[str, list[dict[str, Any]]]:
    values = tmp_root / f"{postgres.unique_name('hygiene-values')}.yaml"
    values.write_text(yaml.safe_dump(CHART_VALUES))
    result = subprocess.run(
        [str(tools.helm_binary(4)), "template", "agent-bom", str(CHART), "--namespace", "agent-bom", "-f", str(values)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d]


def test_chart_renders_every_pod_it_has(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The backup, the restore, the drill, the retention Job and the helm test: the checks below see them all."""
    kinds = sorted(d["kind"] for d in rendered[1])
    assert (kinds.count("CronJob"), kinds.count("Pod")) == (4, 1), kinds


def test_chart_renders_no_secret_object(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    assert [d["metadata"]["name"] for d in rendered[1] if d["kind"] == "Secret"] == []


def test_chart_takes_every_secret_variable_from_a_secret_ref(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    inline = []
    referenced = set()
    for document in rendered[1]:
        for container in _containers(document):
            for variable in container.get("env") or []:
                if variable["name"] not in SECRET_ENV:
                    continue
                if "value" in variable or "secretKeyRef" not in (variable.get("valueFrom") or {}):
                    inline.append(f"{document['kind']}/{container['name']}: {variable['name']}")
                referenced.add(variable["name"])
    assert inline == []
    assert {"AGENT_BOM_POSTGRES_URL", "AGENT_BOM_RESTORE_POSTGRES_URL", "AWS_SECRET_ACCESS_KEY",
            "AGENT_BOM_BACKUP_PING_URL", "AGENT_BOM_BACKUP_WEBHOOK_URL",
            "AGENT_BOM_BACKUP_PUSHGATEWAY_PASSWORD"} <= referenced


def test_chart_output_has_no_url_with_credentials(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    assert CREDENTIAL_URL.findall(rendered[0]) == []

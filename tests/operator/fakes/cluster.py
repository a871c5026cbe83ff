"""A fake EKS cluster for scripts/deploy/verify-eks-reference.sh: ``kubectl`` and ``aws``
executables on a sandbox PATH that answer from the recorded JSON in
``tests/operator/fixtures/eks/``, plus the real ``agent-bom-backup`` against moto.

The sandbox PATH holds only what the script needs (bash, python3, mktemp, rm and the
CLI), so a test can take ``kubectl`` or ``aws`` away even though the machine has them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from devstack import tools
from tests.support import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eks"
FAKE_TOOL = Path(__file__).resolve().with_name("fake_tool.py")
SCRIPT = tools.repo_root() / "scripts" / "deploy" / "verify-eks-reference.sh"
SANDBOX_TOOLS = ("bash", "cat", "mktemp", "rm")
NAMESPACE = "agent-bom"
CRONJOB = "agent-bom-control-plane-backup"
SERVICE_ACCOUNT = "agent-bom-control-plane-backup"
CLUSTER = "corp-ai"
REGION = "us-east-1"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def cronjob_backing_up_to(bucket: str, endpoint_url: str | None = None, **changes: Any) -> dict[str, Any]:
    """The recorded CronJob, its bucket replaced, optionally an S3-compatible endpoint added."""
    cronjob = fixture("cronjob.json")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    for item in container["env"]:
        if item["name"] == "AGENT_BOM_BACKUP_BUCKET":
            item["value"] = bucket
    if endpoint_url:
        container["env"] += [
            {"name": "AGENT_BOM_BACKUP_ENDPOINT_URL", "value": endpoint_url},
            {"name": "AGENT_BOM_BACKUP_PATH_STYLE", "value": "true"},
        ]
    cronjob["spec"].update(changes)
    return cronjob


class FakeCluster:
    """Recorded answers per command; ``run()`` runs the script against them."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.scenario = root / "scenario" / "scenario.json"
        self.scenario.parent.mkdir()
        self.calls_file = root / "calls.jsonl"
        self.rules: dict[str, list[dict[str, Any]]] = {"kubectl": [], "aws": []}
        for name in SANDBOX_TOOLS:
            found = shutil.which(name)
            assert found, f"{name} is needed on PATH for the sandbox"
            (self.bin / name).symlink_to(found)
        # a real interpreter, not a version-manager shim that needs its own PATH entries
        (self.bin / "python3").symlink_to(tools.venv_bin_dir() / "python")
        (self.bin / "agent-bom-backup").symlink_to(tools.venv_executable("agent-bom-backup"))
        self.install("kubectl")
        self.install("aws")

    def install(self, tool: str) -> None:
        wrapper = self.bin / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{tools.venv_bin_dir() / "python"}" "{FAKE_TOOL}" {tool} "$@"\n')
        wrapper.chmod(0o755)

    def remove(self, tool: str) -> None:
        (self.bin / tool).unlink()

    def answer(self, tool: str, args: list[str], *, file: str | None = None, data: Any = None,
               stdout: str = "", stderr: str = "", exit_code: int = 0) -> None:
        """Answer ``tool`` calls containing ``args``; it takes precedence over earlier answers."""
        rule: dict[str, Any] = {"args": args, "stdout": stdout, "stderr": stderr, "exit": exit_code}
        if data is not None:
            file = f"{len(list(self.scenario.parent.iterdir()))}-{tool}.json"
            (self.scenario.parent / file).write_text(json.dumps(data))
        if file is not None:
            if not (self.scenario.parent / file).exists():
                shutil.copy(FIXTURES / file, self.scenario.parent / file)
            rule["file"] = file
        # the newest answer wins over earlier ones it overlaps
        self.rules[tool] = [rule] + [r for r in self.rules[tool] if r["args"] != args]

    def healthy(self, cronjob: dict[str, Any]) -> FakeCluster:
        """Every recorded answer of a healthy cluster whose CronJob is ``cronjob``."""
        self.answer("kubectl", ["version", "--client"], file="kubectl-version.json")
        self.answer("kubectl", ["config", "view", "--minify"], file="kubeconfig-minify.json")
        self.answer("kubectl", ["get", "cronjob", CRONJOB], data=cronjob)
        self.answer("kubectl", ["get", "jobs"], file="jobs-succeeded.json")
        self.answer("kubectl", ["get", "serviceaccount", SERVICE_ACCOUNT], file="serviceaccount.json")
        self.answer("aws", ["sts", "get-caller-identity"], file="sts-get-caller-identity.json")
        self.answer("aws", ["eks", "describe-cluster"], file="eks-describe-cluster.json")
        self.answer("aws", ["eks", "list-pod-identity-associations"], file="pod-identity-associations-empty.json")
        return self

    def save(self) -> None:
        """Write the answers where the fakes read them (``run()`` does it too)."""
        self.scenario.write_text(json.dumps(self.rules))

    def tool_env(self) -> dict[str, str]:
        """The variables the fakes need."""
        return {"FAKE_TOOLS_SCENARIO": str(self.scenario), "FAKE_TOOLS_CALLS": str(self.calls_file)}

    def run(self, *args: str, **extra_env: str) -> cli.Run:
        self.save()
        argv = [str(SCRIPT), *args] if args else [
            str(SCRIPT), "--cluster-name", CLUSTER, "--region", REGION, "--namespace", NAMESPACE]
        env = {**self.env, "PATH": str(self.bin), **self.tool_env(), **extra_env}
        return cli.run(argv, env, timeout=120)

    def calls(self, tool: str) -> list[list[str]]:
        if not self.calls_file.exists():
            return []
        records = [json.loads(line) for line in self.calls_file.read_text().splitlines()]
        return [r["args"] for r in records if r["tool"] == tool]


def table(run: cli.Run) -> dict[str, tuple[str, str]]:
    """The script's table: check name -> (result, detail)."""
    rows: dict[str, tuple[str, str]] = {}
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CHECK "))
    result_col = lines[header].index("RESULT")
    detail_col = lines[header].index("DETAIL")
    for line in lines[header + 1:]:
        if not line.strip():
            break
        rows[line[:result_col].strip()] = (line[result_col:detail_col].strip(), line[detail_col:].strip())
    return rows


"""Generated documentation stays current."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import tools

pytestmark = pytest.mark.unit


def test_configuration_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(tools.repo_root() / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_configuration_reference_lists_every_exit_code() -> None:
    from agent_bom_backup.errors import ExitCode

    text = (tools.repo_root() / "docs" / "configuration.md").read_text()
    assert all(f"| {int(code)} | {code.name.lower()} |" in text for code in ExitCode)


DOCS = [tools.repo_root() / "README.md", *sorted((tools.repo_root() / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_relative_links_resolve(doc: Path) -> None:
    targets = [m.group(1).split("#")[0] for m in LINK.finditer(doc.read_text())]
    local = [t for t in targets if t and not re.match(r"^[a-z]+:", t)]
    assert [t for t in local if not (doc.parent / t).exists()] == []


# ------------------------------------------------------------------ every command block has a class
#: what a shell block of a document needs: RUNS_HERE names the test that runs it (or the same
#: commands against the devstack), CLUSTER needs a Kubernetes cluster or a cloud account,
#: ILLUSTRATIVE shows a shape to adapt. docs/runbook.md is classified command by command in
#: tests/operator/test_docs_commands.py.
RUNS_HERE, CLUSTER, ILLUSTRATIVE = "runs here", "needs a cluster or cloud", "illustrative"
SHELL_FENCE = re.compile(r"^```(?:sh|bash|console|shell)\n(.*?)^```", re.S | re.M)
CLASSIFIED_DOCS = [tools.repo_root() / p for p in ("README.md", "docs/install.md", "docs/performance.md",
                                                   "deploy/helm/agent-bom/README.md")]
#: (document, first command line of the block, occurrence) -> (class, the test that runs it / why not)
BLOCK_CLASSES: dict[tuple[str, str, int], tuple[str, str]] = {
    ("README.md", "scripts/drill.sh", 0): (RUNS_HERE, "tests/test_drill.py"),
    ("README.md", "pipx install agent-bom-backup", 0): (RUNS_HERE, "tests/release/test_wheel.py"),
    ("README.md", "kubectl -n agent-bom create secret generic agent-bom-postgres \\", 0): (CLUSTER, "a Secret"),
    ("README.md", "kubectl -n agent-bom create configmap rds-ca-bundle --from-file=ca.crt=./global-bundle.pem", 0):
        (CLUSTER, "a ConfigMap; the pods' use of it: tests/image/test_tls_postgres.py"),
    ("README.md", "helm install agent-bom-backup oci://ghcr.io/agent-bom/charts/agent-bom --version 0.2.0 -n agent-bom "
                  "-f values.yaml", 0): (CLUSTER, "rendered from a registry: tests/release/test_registry.py"),
    ("README.md", "cosign verify ghcr.io/agent-bom/agent-bom-backup@sha256:… \\", 0): (CLUSTER, "GHCR and Sigstore"),
    ("README.md", 'export AWS_REGION="<your-backup-bucket-region>"', 0): (RUNS_HERE, "tests/e2e/test_restore_latest.py"),
    ("docs/install.md", "pipx install agent-bom-backup", 0): (RUNS_HERE, "tests/release/test_wheel.py"),
    ("docs/install.md", "kubectl create namespace agent-bom", 0): (CLUSTER, "a namespace, a ConfigMap, a Secret"),
    ("docs/install.md", "helm install agent-bom-backup oci://ghcr.io/agent-bom/charts/agent-bom --version 0.2.0 \\", 0):
        (CLUSTER, "rendered from a registry: tests/release/test_registry.py"),
    ("docs/install.md", "helm install agent-bom-backup oci://ghcr.io/agent-bom/charts/agent-bom --version 0.2.0 \\", 1):
        (CLUSTER, "beside upstream's release: tests/chart/test_release_guard.py, test_upstream_values.py"),
    ("docs/install.md", "helm get values agent-bom -n agent-bom -o yaml > values.yaml", 0):
        (CLUSTER, "moves a release; the names it keeps: tests/chart/test_release_guard.py"),
    ("docs/install.md", "JOB=first-backup-$(date +%s)", 0): (CLUSTER, "the pod it runs: tests/image/test_pod_spec.py"),
    ("docs/install.md", "export AWS_PROFILE=prod AWS_REGION=us-east-1", 0):
        (CLUSTER, "an AWS account; list against moto: tests/release/test_wheel.py"),
    ("docs/install.md", "export PGPASSWORD=…", 0): (CLUSTER, "RDS; the script against the devstack: tests/e2e"),
    ("docs/performance.md", "bench/run.sh", 0): (RUNS_HERE, "tests/test_bench_smoke.py"),
    ("docs/performance.md", ".tools/venv/bin/python bench/encryption.py --scales 100MB --repetitions 5", 0):
        (RUNS_HERE, "tests/test_bench_smoke.py"),
    ("deploy/helm/agent-bom/README.md", "helm install agent-bom-backup oci://ghcr.io/agent-bom/charts/agent-bom "
                                        "--version 0.2.0 \\", 0): (CLUSTER, "tests/release/test_registry.py renders it"),
    ("deploy/helm/agent-bom/README.md", "kubectl create namespace agent-bom", 0): (CLUSTER, "namespace and Secret"),
    ("deploy/helm/agent-bom/README.md", "kubectl -n agent-bom get cronjob agent-bom-control-plane-backup", 0):
        (CLUSTER, "reads the cluster"),
    ("deploy/helm/agent-bom/README.md", "cosign verify ghcr.io/agent-bom/charts/agent-bom@sha256:… \\", 0):
        (CLUSTER, "GHCR and Sigstore"),
    ("deploy/helm/agent-bom/README.md", "kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-restore "
                                        "restore-inc-1234", 0): (CLUSTER, "the pod: tests/image/test_restore_pod_spec.py"),
    ("deploy/helm/agent-bom/README.md", "kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-restore "
                                        "restore-inc-1234 --dry-run=client -o yaml \\", 0):
        (CLUSTER, "instantiated with the real kubectl: tests/image/test_restore_pod_spec.py"),
}


def shell_blocks() -> list[tuple[str, str, int]]:
    found = []
    for doc in CLASSIFIED_DOCS:
        seen: dict[str, int] = {}
        for match in SHELL_FENCE.finditer(doc.read_text()):
            lines = [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]
            first = re.sub(r"\s{2,}#.*$", "", lines[0]).rstrip() if lines else ""
            key = (str(doc.relative_to(tools.repo_root())), first, seen.get(first, 0))
            seen[first] = seen.get(first, 0) + 1
            found.append(key)
    return found


@pytest.mark.parametrize("block", shell_blocks(), ids=lambda b: f"{b[0]}:{b[1][:40]}")
def test_every_command_block_has_a_class(block: tuple[str, str, int]) -> None:
    assert block in BLOCK_CLASSES, f"classify this block in BLOCK_CLASSES ({RUNS_HERE}, {CLUSTER} or {ILLUSTRATIVE})"


def test_no_class_is_left_for_a_block_that_is_gone() -> None:
    assert sorted(set(BLOCK_CLASSES) - set(shell_blocks())) == []


@pytest.mark.parametrize("block", [k for k, v in BLOCK_CLASSES.items() if v[0] == RUNS_HERE], ids=lambda b: b[1][:40])
def test_a_block_that_runs_here_names_the_test_that_runs_it(block: tuple[str, str, int]) -> None:
    assert (tools.repo_root() / BLOCK_CLASSES[block][1]).exists()


def test_a_new_block_without_a_class_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "new.md"
    doc.write_text("text\n\n```sh\nkubectl get pods\n```\n")
    monkeypatch.setattr(tools, "repo_root", lambda: tmp_path)
    monkeypatch.setitem(globals(), "CLASSIFIED_DOCS", [doc])
    assert [b for b in shell_blocks() if b not in BLOCK_CLASSES] == [("new.md", "kubectl get pods", 0)]

"""Every GitHub workflow validates against the workflow JSON schema (SchemaStore, kept in
../shared/reference), and backup-restore.yml is the runbook's CI guardrail: it runs on the
backup path's changes and weekly, and runs the guardrail tests."""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devstack.tools import repo_root

pytestmark = pytest.mark.unit

WORKFLOWS_DIR = repo_root() / ".github" / "workflows"
SCHEMA_FILE = repo_root().parent / "shared" / "reference" / "github-workflow.schema.json"
GUARDRAIL = WORKFLOWS_DIR / "backup-restore.yml"
#: the runbook's "Packaged implementation" paths and the image the job runs
RUNBOOK_PATHS = (
    "deploy/helm/agent-bom/templates/controlplane-backup-cronjob.yaml",
    "deploy/helm/agent-bom/values.yaml",
    "deploy/ops/restore-postgres-backup.sh",
    ".github/workflows/backup-restore.yml",
    "image/**",
    "pyproject.toml",
)
WORKFLOW_FILES = sorted(p for p in WORKFLOWS_DIR.glob("*") if p.suffix in (".yml", ".yaml"))


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: ``on:`` stays the string "on" (PyYAML's 1.1 rules make it True)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_workflow(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))


def test_workflows_exist() -> None:
    assert GUARDRAIL in WORKFLOW_FILES


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.name for p in WORKFLOW_FILES])
def test_workflow_validates_against_the_schema(path: Path) -> None:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"workflow schema not found: {SCHEMA_FILE} (see ../shared/reference/README.md)")
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in _validator().iter_errors(load_workflow(path))]
    assert errors == []


def test_schema_rejects_an_invalid_workflow() -> None:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"workflow schema not found: {SCHEMA_FILE}")
    broken = {"on": {"push": None}, "jobs": {"x": {"runs-on": "ubuntu-24.04", "stepz": []}}}
    assert list(_validator().iter_errors(broken))


@pytest.mark.parametrize("event", ["push", "pull_request"])
def test_guardrail_runs_on_changes_to_the_runbook_paths(event: str) -> None:
    paths = load_workflow(GUARDRAIL)["on"][event]["paths"]
    assert [p for p in RUNBOOK_PATHS if p not in paths] == []


def test_guardrail_runs_weekly() -> None:
    (schedule,) = load_workflow(GUARDRAIL)["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday.isdigit()) == ("*", "*", True)


def test_guardrail_can_be_started_by_hand() -> None:
    assert "workflow_dispatch" in load_workflow(GUARDRAIL)["on"]


def test_guardrail_runs_the_guardrail_tests() -> None:
    runs = [step.get("run", "") for job in load_workflow(GUARDRAIL)["jobs"].values() for step in job["steps"]]
    assert any("pytest" in run and "tests/e2e/test_guardrail.py" in run for run in runs)


def test_guardrail_test_module_exists() -> None:
    assert (repo_root() / "tests" / "e2e" / "test_guardrail.py").is_file()


def _guardrail_image_job() -> dict:
    return load_workflow(GUARDRAIL)["jobs"]["image-guardrail"]


def _step_running(job: dict, text: str) -> dict:
    (step,) = [step for step in job["steps"] if text in step.get("run", "")]
    return step


def test_image_guardrail_runs_weekly() -> None:
    assert "github.event_name == 'schedule'" in _guardrail_image_job()["if"]


@pytest.mark.parametrize("event", ["push", "pull_request"])
def test_image_guardrail_does_not_run_on_path_changes(event: str) -> None:
    assert f"'{event}'" not in _guardrail_image_job()["if"]


def test_path_triggered_guardrail_job_is_unconditional() -> None:
    assert "if" not in load_workflow(GUARDRAIL)["jobs"]["guardrail"]


@pytest.mark.parametrize("option", ["--refresh-base", "--pull", "--no-cache"])
def test_image_guardrail_rebuilds_the_image_from_fresh_bases(option: str) -> None:
    assert option in _step_running(_guardrail_image_job(), "scripts/build-image.sh")["run"].split()


def test_image_guardrail_tests_the_image_it_built() -> None:
    job = _guardrail_image_job()
    build = _step_running(job, "scripts/build-image.sh")["run"].split()
    tag = build[build.index("--tag") + 1]
    assert f'AGENT_BOM_BACKUP_IMAGE={tag}' in _step_running(job, "pytest")["run"]


@pytest.mark.parametrize("tests", ["tests/image", "tests/release"])
def test_image_guardrail_runs_the_pod_spec_in_the_image(tests: str) -> None:
    assert tests in _step_running(_guardrail_image_job(), "pytest")["run"].split()


def test_image_guardrail_installs_podman_and_the_registry() -> None:
    bootstrap = _step_running(_guardrail_image_job(), "scripts/bootstrap.sh")["run"].split()
    assert {"podman", "registry", "postgres"} <= set(bootstrap)


BENCH = WORKFLOWS_DIR / "bench.yaml"
BENCH_RESULTS = repo_root() / "bench" / "results"


def _bench_job() -> dict:
    return load_workflow(BENCH)["jobs"]["bench"]


def test_bench_runs_by_hand() -> None:
    assert "workflow_dispatch" in load_workflow(BENCH)["on"]


def test_bench_publishes_what_bench_run_wrote() -> None:
    job = _bench_job()
    (upload,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    run = _step_running(job, "bench/run.sh")["run"]
    assert '--results-dir "$RESULTS_DIR"' in run
    assert upload["with"]["path"] == "${{ env.RESULTS_DIR }}/"


def test_bench_artifact_fails_when_the_run_wrote_nothing() -> None:
    (upload,) = [step for step in _bench_job()["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["if-no-files-found"] == "error"


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo_root()), *args], capture_output=True, text=True, timeout=60, check=False)


def test_no_raw_benchmark_data_is_tracked() -> None:
    result = _git("ls-files", "--", "bench/results/*.json")
    assert (result.returncode, result.stdout) == (0, "")


def test_new_raw_benchmark_data_is_ignored() -> None:
    assert _git("check-ignore", "-q", "--no-index", "bench/results/2099-01-01.json").returncode == 0


@pytest.mark.parametrize("kept", ["2026-11-25.md", "2026-11-25-backup.png", "2026-11-25-restore.png"])
def test_benchmark_summaries_and_plots_stay_committed(kept: str) -> None:
    assert _git("ls-files", "--error-unmatch", f"bench/results/{kept}").returncode == 0

""".github/workflows/chart.yaml: valid against the GitHub workflow schema, triggered by chart
changes, running the real chart-testing and helm-unittest with Helm 3 and Helm 4."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.helm_render import REPO

pytestmark = pytest.mark.unit

WORKFLOW = REPO / ".github" / "workflows" / "chart.yaml"


class _GitHubLoader(yaml.SafeLoader):
    """YAML 1.2 booleans as GitHub reads them: `on:` is a key, not True."""


_GitHubLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GitHubLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@functools.lru_cache(maxsize=1)
def _workflow() -> dict[str, Any]:
    return yaml.load(WORKFLOW.read_text(), Loader=_GitHubLoader)  # noqa: S506 - SafeLoader subclass


def _runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in _workflow()["jobs"][job]["steps"])


def _uses(job: str) -> list[str]:
    return [step["uses"].split("@")[0] for step in _workflow()["jobs"][job]["steps"] if "uses" in step]


class TestChartWorkflow:
    def test_matches_the_github_workflow_schema(self, github_workflow_schema):
        jsonschema.Draft7Validator(github_workflow_schema).validate(_workflow())

    def test_schema_rejects_a_broken_workflow(self, github_workflow_schema):
        """Guards the check above."""
        broken = {**_workflow(), "jobs": {"x": {"runs-on": "ubuntu-latest", "step": []}}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(github_workflow_schema).validate(broken)

    @pytest.mark.parametrize("event", ["push", "pull_request"])
    @pytest.mark.parametrize("path", ["deploy/helm/**", "ci/**", "examples/**"])
    def test_runs_on_chart_changes(self, event, path):
        assert path in _workflow()["on"][event]["paths"]

    def test_runs_chart_testing_lint_with_the_repo_config(self):
        assert "ct lint --config ci/ct.yaml" in _runs("lint-and-unittest")

    def test_uses_the_chart_testing_action(self):
        assert "helm/chart-testing-action" in _uses("lint-and-unittest")

    def test_runs_the_helm_unittest_plugin(self):
        runs = _runs("lint-and-unittest")
        assert "helm-unittest/helm-unittest" in runs
        assert "helm unittest" in runs

    @pytest.mark.parametrize("job", ["lint-and-unittest", "kubernetes-validate"])
    def test_helm_3_and_4_matrix(self, job):
        majors = [h["major"] for h in _workflow()["jobs"][job]["strategy"]["matrix"]["helm"]]
        assert majors == [3, 4]

    def test_validates_three_kubernetes_versions_strictly(self):
        job = _workflow()["jobs"]["kubernetes-validate"]
        assert job["strategy"]["matrix"]["kube"] == ["1.27.0", "1.32.0", "1.35.0"]
        assert "kubernetes-validate --strict" in _runs("kubernetes-validate")

    def test_runs_the_pytest_chart_suite(self):
        assert "pytest tests/chart" in _runs("pytest-chart")

    def test_read_only_token(self):
        assert _workflow()["permissions"] == {"contents": "read"}

"""The helm-unittest suites (deploy/helm/agent-bom/tests/*_test.yaml) are valid against the
helm-unittest JSON schema and pass when executed by the local interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.helm_render import CHART_DIR
from tests.chart.helm_unittest import SuiteError, parse_path, run_test, set_to_values

SUITE_DIR = CHART_DIR / "tests"
SUITES = sorted(SUITE_DIR.glob("*_test.yaml"))
CASES = [
    (path, index)
    for path in SUITES
    for index, _ in enumerate(yaml.safe_load(path.read_text())["tests"])
]


def _case_id(case: tuple[Path, int]) -> str:
    path, index = case
    return f"{path.stem}::{yaml.safe_load(path.read_text())['tests'][index]['it']}"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


class TestSuiteFiles:
    def test_every_template_has_a_suite(self):
        templates = {
            p.relative_to(CHART_DIR / "templates").as_posix()
            for p in (CHART_DIR / "templates").rglob("*.yaml")
        }
        covered = {t for s in SUITES for t in _load(s)["templates"]}
        assert templates == covered

    def test_one_suite_per_template(self):
        assert all(len(_load(s)["templates"]) == 1 for s in SUITES)

    @pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
    def test_suite_matches_the_helm_unittest_schema(self, path, helm_testsuite_schema):
        jsonschema.Draft7Validator(helm_testsuite_schema).validate(_load(path))

    @pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
    def test_suite_starts_with_the_disabled_case(self, path):
        first = _load(path)["tests"][0]
        assert first["asserts"] == [{"hasDocuments": {"count": 0}}]

    def test_schema_rejects_an_unknown_assertion(self, helm_testsuite_schema):
        """Guards the schema check: a misspelt assertion is refused."""
        bad = {"suite": "x", "templates": ["a.yaml"], "tests": [{"it": "x", "asserts": [{"equals": {"path": "a", "value": 1}}]}]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(helm_testsuite_schema).validate(bad)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_suite_case_passes(case):
    path, index = case
    suite = _load(path)
    run_test(path, suite, suite["tests"][index])


class TestInterpreter:
    """The interpreter can fail: wrong expectations raise."""

    SUITE_PATH = SUITE_DIR / "controlplane-backup-cronjob_test.yaml"

    def _run(self, asserts: list[dict[str, Any]], **test: Any) -> None:
        suite = _load(self.SUITE_PATH)
        run_test(self.SUITE_PATH, suite, {"it": "guard", "asserts": asserts, **test})

    @pytest.mark.parametrize(
        "assertion",
        [
            {"hasDocuments": {"count": 2}},
            {"isKind": {"of": "Deployment"}},
            {"equal": {"path": "spec.schedule", "value": "0 4 * * *"}},
            {"notExists": {"path": "spec.schedule"}},
            {"exists": {"path": "spec.nope"}},
            {"matchRegex": {"path": "metadata.name", "pattern": "^other"}},
            {"contains": {"path": "spec.jobTemplate.spec.template.spec.containers[0].env", "content": {"name": "NOPE"}}},
            {"isSubset": {"path": "spec", "content": {"suspend": True}}},
            {"failedTemplate": {"errorPattern": "anything"}},
            {"equal": {"path": "spec.schedule", "value": "0 3 * * *"}, "not": True},
        ],
        ids=["count", "kind", "equal", "not-exists", "exists", "regex", "contains", "subset", "failed-template", "not"],
    )
    def test_wrong_expectation_fails(self, assertion):
        with pytest.raises(SuiteError):
            self._run([assertion])

    def test_unsupported_assertion_is_refused(self):
        with pytest.raises(SuiteError, match="unsupported assertion"):
            self._run([{"matchSnapshot": {}}])

    def test_unsupported_path_syntax_is_refused(self):
        with pytest.raises(SuiteError, match="unsupported path syntax"):
            parse_path('spec.containers[?(@.name == "backup")].env')

    @pytest.mark.parametrize(
        ("path", "tokens"),
        [
            ("spec.containers[0].env", ["spec", "containers", 0, "env"]),
            ('metadata.labels["app.kubernetes.io/name"]', ["metadata", "labels", "app.kubernetes.io/name"]),
            ("automountServiceAccountToken", ["automountServiceAccountToken"]),
        ],
        ids=["index", "quoted-key", "top-level"],
    )
    def test_path_parsing(self, path, tokens):
        assert parse_path(path) == tokens

    def test_set_keys_build_nested_values_with_escaped_dots(self):
        assert set_to_values({r"a.b\.c.d": 1}, {"a.e": None}) == {"a": {"b.c": {"d": 1}, "e": None}}

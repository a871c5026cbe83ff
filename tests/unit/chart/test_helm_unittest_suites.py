"""The helm-unittest suites (deploy/helm/agent-bom/tests/*_test.yaml): the small user-facing
contract of each template. They are valid against the plugin's JSON schema, they pass when run
here by tests/chart/helm_unittest.py (tests/chart/test_helm_unittest_cases.py, with helm), and
that runner follows the plugin's documented semantics for every assertion type the suites use
(TestPluginSemantics; helm-unittest DOCUMENT.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.helm_render import CHART_DIR
from tests.chart.helm_unittest import ASSERTIONS, Rendered, SuiteError, check, parse_path, set_to_values

SUITE_DIR = CHART_DIR / "tests"
SUITES = sorted(SUITE_DIR.glob("*_test.yaml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.mark.unit
class TestSuiteFiles:
    def test_every_template_has_a_suite(self):
        templates = {p.relative_to(CHART_DIR / "templates").as_posix() for p in (CHART_DIR / "templates").rglob("*.yaml")}
        assert templates == {t for s in SUITES for t in _load(s)["templates"]}

    def test_one_template_per_suite(self):
        assert [s.name for s in SUITES if len(_load(s)["templates"]) != 1] == []

    @pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
    def test_suite_matches_the_helm_unittest_schema(self, path, helm_testsuite_schema):
        jsonschema.Draft7Validator(helm_testsuite_schema).validate(_load(path))

    @pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
    def test_suite_starts_with_the_case_that_renders_nothing(self, path):
        assert _load(path)["tests"][0]["asserts"] == [{"hasDocuments": {"count": 0}}]

    def test_suites_use_only_assertions_the_runner_knows(self):
        used = {kind for s in SUITES for t in _load(s)["tests"] for a in t["asserts"] for kind in a if kind != "not"}
        assert used <= ASSERTIONS

    def test_schema_rejects_an_unknown_assertion(self, helm_testsuite_schema):
        """Guards the schema check: a misspelt assertion is refused."""
        bad = {"suite": "x", "templates": ["a.yaml"], "tests": [{"it": "x", "asserts": [{"equals": {"path": "a", "value": 1}}]}]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(helm_testsuite_schema).validate(bad)


CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "agent-bom-control-plane-backup", "labels": {"app.kubernetes.io/component": "control-plane-backup"}},
    "spec": {"schedule": "0 3 * * *", "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"k": "v"}}]},
}
ONE = Rendered([CRONJOB])


def passes(assertion: dict[str, Any], rendered: Rendered = ONE) -> bool:
    try:
        check(assertion, rendered)
    except SuiteError:
        return False
    return True


@pytest.mark.unit
class TestPluginSemantics:
    """The runner agrees with helm-unittest's DOCUMENT.md on each assertion type the suites use."""

    @pytest.mark.parametrize(("count", "expected"), [(1, True), (0, False), (2, False)], ids=["one", "zero", "two"])
    def test_has_documents_counts_the_rendered_documents(self, count, expected):
        """hasDocuments: "Assert the documents count rendered by the template specified"."""
        assert passes({"hasDocuments": {"count": count}}) is expected

    def test_has_documents_zero_when_nothing_renders(self):
        assert passes({"hasDocuments": {"count": 0}}, Rendered([])) is True

    @pytest.mark.parametrize(("kind", "of", "expected"), [
        ("isKind", "CronJob", True), ("isKind", "Job", False),
        ("isAPIVersion", "batch/v1", True), ("isAPIVersion", "batch/v1beta1", False),
    ], ids=["kind", "other-kind", "api-version", "other-api-version"])
    def test_is_kind_and_api_version_equal_the_field(self, kind, of, expected):
        """isKind / isAPIVersion: "is equivalent to equal: path: kind / apiVersion"."""
        assert passes({kind: {"of": of}}) is expected

    @pytest.mark.parametrize(("path", "value", "expected"), [
        ("spec.schedule", "0 3 * * *", True),
        ("spec.schedule", "0 4 * * *", False),
        ('metadata.labels["app.kubernetes.io/component"]', "control-plane-backup", True),
        ("spec.env[1].valueFrom", {"k": "v"}, True),
        ("spec.env[1].valueFrom", {"k": "v", "x": 1}, False),
        ("spec.nope", None, False),
    ], ids=["equal", "different", "quoted-key", "object", "object-superset", "missing-path"])
    def test_equal_compares_the_whole_value_at_path(self, path, value, expected):
        """equal: "Assert the value of specified path equal to the value" (jsonPath keys in [""])."""
        assert passes({"equal": {"path": path, "value": value}}) is expected

    @pytest.mark.parametrize(("content", "expected"), [
        ({"name": "A", "value": "1"}, True),
        ({"name": "A"}, False),
        ({"name": "A", "value": "2"}, False),
    ], ids=["element", "partial-element", "different-element"])
    def test_contains_needs_an_equal_element(self, content, expected):
        """contains (without any: true): the array at path contains the content as an element."""
        assert passes({"contains": {"path": "spec.env", "content": content}}) is expected

    def test_contains_on_a_non_array_fails(self):
        assert passes({"contains": {"path": "spec.schedule", "content": "0"}}) is False

    @pytest.mark.parametrize(("path", "expected"), [("spec.nope", True), ("spec.schedule", False)], ids=["absent", "present"])
    def test_not_exists(self, path, expected):
        """notExists: "Assert if the specified path NOT exists"."""
        assert passes({"notExists": {"path": path}}) is expected

    @pytest.mark.parametrize(("error", "pattern", "expected"), [
        ("execution error at (x): bucket is required", r"bucket is required", True),
        ("values don't meet the specifications of the schema(s)", r"specifications of the schema", True),
        ("execution error at (x): bucket is required", r"region", False),
        (None, r".*", False),
    ], ids=["template-fail", "schema-error", "other-error", "no-error"])
    def test_failed_template_searches_the_error_pattern(self, error, pattern, expected):
        """failedTemplate errorPattern: a regex matched against the error, schema errors included."""
        assert passes({"failedTemplate": {"errorPattern": pattern}}, Rendered([], error)) is expected

    def test_not_inverts_an_assertion(self):
        """not: true asserts contrarily."""
        assert (passes({"isKind": {"of": "Job"}, "not": True}), passes({"isKind": {"of": "CronJob"}, "not": True})) \
            == (True, False)

    def test_document_assertions_fail_when_nothing_rendered(self):
        assert passes({"notExists": {"path": "spec"}}, Rendered([])) is False

    def test_document_assertions_apply_to_every_document(self):
        """Without documentIndex an assertion is checked on all documents (DOCUMENT.md: default -1)."""
        other = {**CRONJOB, "kind": "Job"}
        assert passes({"isKind": {"of": "CronJob"}}, Rendered([CRONJOB, other])) is False

    def test_set_keys_build_nested_values(self):
        """set: keys as --set paths; values of any type; later maps win."""
        assert set_to_values({"a.b.c": 1, "a.d": [1]}, {"a.b.c": {"x": None}}) == {"a": {"b": {"c": {"x": None}}, "d": [1]}}

    @pytest.mark.parametrize("assertion", [
        {"matchSnapshot": {}},
        {"failedTemplate": {"errorMessage": "exact"}},
        {"contains": {"path": "spec.env", "content": {"name": "A"}, "any": True}},
    ], ids=["unknown-type", "error-message", "contains-any"])
    def test_anything_else_is_refused(self, assertion):
        with pytest.raises(SuiteError, match="unsupported|needs errorPattern"):
            check(assertion, ONE)

    def test_unsupported_path_syntax_is_refused(self):
        with pytest.raises(SuiteError, match="unsupported path syntax"):
            parse_path('spec.containers[?(@.name == "backup")].env')

"""Run the helm-unittest suites (deploy/helm/agent-bom/tests/*_test.yaml) here, through the real
``helm template``; the chart workflow runs them with the real plugin too.

The plugin is a Go binary not obtainable here, so this module executes the part of its language
the suites use, with the semantics its documentation (helm-unittest DOCUMENT.md) gives, and
refuses everything else loudly (a suite that needs more must extend this module and
tests/unit/chart/test_helm_unittest_suites.py::TestPluginSemantics together):

* suite and test keys: ``templates``/``template``, ``release`` (name and namespace: the suites
  must set them), ``capabilities`` (majorVersion, minorVersion), ``values`` (files relative to
  the suite), ``set`` (``--set``-style dotted keys, values of any type; the test's win);
* assertions, each optionally with ``not: true``: ``hasDocuments`` (count of the documents the
  templates render), ``isKind``, ``isAPIVersion``, ``equal`` (deep equality at ``path``; a
  missing path fails), ``contains`` (an element of the array at ``path`` equals ``content``),
  ``notExists``, ``failedTemplate`` with ``errorPattern`` (a Go regular expression searched in
  the rendering error, schema errors included). A document assertion applies to every
  rendered document and fails when none was rendered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chart.helm_render import HelmError, render_chart

SUITE_KEYS = {"suite", "templates", "release", "capabilities", "values", "set", "tests"}
TEST_KEYS = {"it", "set", "values", "template", "templates", "release", "capabilities", "asserts"}
_MISSING = object()


class SuiteError(AssertionError):
    """A suite uses something this module does not run, or an assertion failed."""


def set_to_values(*sets: dict[str, Any] | None) -> dict[str, Any]:
    """Nested values from ``set`` maps (dotted keys as ``--set``; later maps win)."""
    values: dict[str, Any] = {}
    for mapping in sets:
        for key, value in (mapping or {}).items():
            node = values
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = copy.deepcopy(value)
    return values


_TOKEN = re.compile(r"""\.?([A-Za-z0-9_$-]+)|\[(\d+)\]|\[\s*"([^"]+)"\s*\]""")


def parse_path(path: str) -> list[str | int]:
    """``spec.containers[0].env`` / ``metadata.labels["app.kubernetes.io/name"]`` -> tokens."""
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match or match.end() == position:
            raise SuiteError(f"unsupported path syntax at {path[position:]!r} in {path!r}")
        name, index, quoted = match.groups()
        tokens.append(int(index) if index is not None else (name or quoted))
        position = match.end()
    return tokens


def lookup(doc: Any, path: str) -> Any:
    node = doc
    for token in parse_path(path):
        if isinstance(token, int):
            if not isinstance(node, list) or token >= len(node):
                return _MISSING
        elif not isinstance(node, dict) or token not in node:
            return _MISSING
        node = node[token]
    return node


def _value(doc: dict[str, Any], spec: dict[str, Any]) -> Any:
    value = lookup(doc, spec["path"])
    if value is _MISSING:
        raise SuiteError(f"path {spec['path']!r} not found")
    return value


def _contains(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    items = _value(doc, spec)
    if not isinstance(items, list):
        raise SuiteError(f"{spec['path']!r} is not an array")
    return spec["content"] in items


DOCUMENT_ASSERTIONS: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
    "isKind": lambda doc, spec: doc.get("kind") == spec["of"],
    "isAPIVersion": lambda doc, spec: doc.get("apiVersion") == spec["of"],
    "equal": lambda doc, spec: _value(doc, spec) == spec["value"],
    "contains": _contains,
    "notExists": lambda doc, spec: lookup(doc, spec["path"]) is _MISSING,
}
ASSERTIONS = set(DOCUMENT_ASSERTIONS) | {"hasDocuments", "failedTemplate"}
#: the parameters each assertion may have here
PARAMETERS = {
    "isKind": {"of"}, "isAPIVersion": {"of"}, "equal": {"path", "value"}, "contains": {"path", "content"},
    "notExists": {"path"}, "hasDocuments": {"count"}, "failedTemplate": {"errorPattern"},
}


@dataclass(frozen=True)
class Rendered:
    """What a test job rendered: its documents, or the rendering error."""

    docs: list[dict[str, Any]]
    error: str | None = None


def check(assertion: dict[str, Any], rendered: Rendered) -> None:
    """Evaluate one assertion; raises :class:`SuiteError` when it fails or is not supported."""
    kinds = set(assertion) - {"not"}
    if len(kinds) != 1 or not kinds <= ASSERTIONS:
        raise SuiteError(f"unsupported assertion {sorted(kinds)}")
    (kind,) = kinds
    spec = assertion[kind] or {}
    if set(spec) - PARAMETERS[kind]:
        raise SuiteError(f"{kind}: unsupported parameters {sorted(set(spec) - PARAMETERS[kind])}")
    negate = bool(assertion.get("not", False))
    if kind == "failedTemplate":
        if "errorPattern" not in spec:
            raise SuiteError("failedTemplate needs errorPattern here (errorMessage compares exactly in the plugin)")
        failed = rendered.error is not None and re.search(spec["errorPattern"], rendered.error) is not None
        if failed == negate:
            raise SuiteError(f"failedTemplate: expected a failure matching {spec['errorPattern']!r}, got {rendered.error!r}")
        return
    if rendered.error is not None:
        raise SuiteError(f"{kind}: rendering failed: {rendered.error}")
    if kind == "hasDocuments":
        if (len(rendered.docs) == spec["count"]) == negate:
            raise SuiteError(f"hasDocuments: expected {spec['count']} documents, got {len(rendered.docs)}")
        return
    if not rendered.docs:
        raise SuiteError(f"{kind}: no document rendered")
    for doc in rendered.docs:
        if DOCUMENT_ASSERTIONS[kind](doc, spec) == negate:
            raise SuiteError(f"{kind} failed on {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {spec}")


def _templates(suite: dict[str, Any], test: dict[str, Any]) -> list[str]:
    names = [test["template"]] if "template" in test else test.get("templates", suite.get("templates", []))
    if not names:
        raise SuiteError("no templates selected")
    return [f"templates/{name}" for name in names]


def render_test(suite_path: Path, suite: dict[str, Any], test: dict[str, Any]) -> Rendered:
    """Render a test job as the plugin does: suite values files, then the test's, then ``set``."""
    unknown = (set(suite) - SUITE_KEYS) | (set(test) - TEST_KEYS)
    if unknown:
        raise SuiteError(f"unsupported suite keys: {sorted(unknown)}")
    release = {**suite.get("release", {}), **test.get("release", {})}
    if not {"name", "namespace"} <= set(release):
        raise SuiteError("set release.name and release.namespace (the plugin's defaults are not valid release names)")
    caps = {**suite.get("capabilities", {}), **test.get("capabilities", {})}
    files = [(suite_path.parent / f).resolve() for f in [*suite.get("values", []), *test.get("values", [])]]
    try:
        docs = render_chart(
            set_to_values(suite.get("set"), test.get("set")),
            show_only=_templates(suite, test),
            kube_version=f"{caps.get('majorVersion', 1)}.{caps['minorVersion']}.0" if caps else "1.32.0",
            namespace=release["namespace"],
            name=release["name"],
            values_files=files,
        )
    except HelmError as err:
        return Rendered([], str(err))
    return Rendered(docs)


def run_test(suite_path: Path, suite: dict[str, Any], test: dict[str, Any]) -> None:
    """Run one test job; raises :class:`SuiteError` on the first failed assertion."""
    rendered = render_test(suite_path, suite, test)
    for number, assertion in enumerate(test["asserts"]):
        try:
            check(assertion, rendered)
        except SuiteError as err:
            raise SuiteError(f"assert #{number}: {err}") from None

"""A small interpreter for the helm-unittest suites in deploy/helm/agent-bom/tests/.

CI runs the real `helm unittest` plugin (a Go binary not obtainable here); locally this
interpreter executes the same suites through :func:`render_chart`, so they cannot rot. It
supports the subset of helm-unittest the suites use and refuses anything else loudly:

* suite/test keys: ``templates``/``template``, ``release`` (name, namespace),
  ``capabilities`` (majorVersion, minorVersion), ``values`` (files relative to the suite),
  ``set`` (dotted keys, ``\\.`` escapes a dot), ``documentIndex`` (on a test or an assert);
* assertions: ``hasDocuments``, ``isKind``, ``isAPIVersion``, ``equal``, ``notEqual``,
  ``exists``, ``notExists``, ``contains``, ``notContains``, ``matchRegex``, ``isSubset``,
  ``lengthEqual``, ``failedTemplate`` (``errorPattern``/``errorMessage``), each with ``not``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.chart.helm_render import KUBE_VERSION, HelmError, render_chart

SUPPORTED_TEST_KEYS = {"it", "set", "values", "template", "templates", "release", "capabilities", "documentIndex", "asserts"}
SUPPORTED_SUITE_KEYS = {"suite", "templates", "release", "capabilities", "values", "set", "tests"}
_MISSING = object()


class SuiteError(AssertionError):
    """A suite uses something this interpreter does not support, or an assertion failed."""


def _split_set_key(key: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in key:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def set_to_values(*sets: dict[str, Any] | None) -> dict[str, Any]:
    """Nested values from helm-unittest ``set`` maps (later maps win)."""
    values: dict[str, Any] = {}
    for mapping in sets:
        for key, value in (mapping or {}).items():
            node = values
            *parents, leaf = _split_set_key(key)
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = copy.deepcopy(value)
    return values


_TOKEN = re.compile(r"""\.?([A-Za-z0-9_$-]+)|\[(\d+)\]|\[\s*"([^"]+)"\s*\]|\[\s*'([^']+)'\s*\]""")


def parse_path(path: str) -> list[str | int]:
    """``spec.containers[0].env`` / ``metadata.labels["app.kubernetes.io/name"]`` -> tokens."""
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match or match.end() == position:
            raise SuiteError(f"unsupported path syntax at {path[position:]!r} in {path!r}")
        name, index, dquoted, squoted = match.groups()
        tokens.append(int(index) if index is not None else (name or dquoted or squoted))
        position = match.end()
    return tokens


def lookup(doc: Any, path: str) -> Any:
    node = doc
    for token in parse_path(path):
        if isinstance(token, int):
            if not isinstance(node, list) or token >= len(node):
                return _MISSING
            node = node[token]
        else:
            if not isinstance(node, dict) or token not in node:
                return _MISSING
            node = node[token]
    return node


def _subset(content: Any, actual: Any) -> bool:
    if isinstance(content, dict) and isinstance(actual, dict):
        return all(k in actual and _subset(v, actual[k]) for k, v in content.items())
    return content == actual


def _value(doc: dict[str, Any], spec: dict[str, Any]) -> Any:
    value = lookup(doc, spec["path"])
    if value is _MISSING:
        raise SuiteError(f"path {spec['path']!r} not found")
    return value


def _contains(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    items = _value(doc, spec)
    if not isinstance(items, list):
        raise SuiteError(f"{spec['path']!r} is not a list")
    matches = [i for i in items if (_subset(spec["content"], i) if spec.get("any") else i == spec["content"])]
    return len(matches) == spec["count"] if "count" in spec else bool(matches)


def _match_regex(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    value = _value(doc, spec)
    if not isinstance(value, str):
        raise SuiteError(f"{spec['path']!r} is not a string")
    return re.search(spec["pattern"], value) is not None


def _length_equal(doc: dict[str, Any], spec: dict[str, Any]) -> bool:
    return len(_value(doc, spec)) == spec["count"]


DOCUMENT_ASSERTIONS: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
    "isKind": lambda doc, spec: doc.get("kind") == spec["of"],
    "isAPIVersion": lambda doc, spec: doc.get("apiVersion") == spec["of"],
    "equal": lambda doc, spec: _value(doc, spec) == spec["value"],
    "notEqual": lambda doc, spec: _value(doc, spec) != spec["value"],
    "exists": lambda doc, spec: lookup(doc, spec["path"]) is not _MISSING,
    "notExists": lambda doc, spec: lookup(doc, spec["path"]) is _MISSING,
    "contains": _contains,
    "notContains": lambda doc, spec: not _contains(doc, spec),
    "matchRegex": _match_regex,
    "isSubset": lambda doc, spec: _subset(spec["content"], _value(doc, spec)),
    "lengthEqual": _length_equal,
}
SUPPORTED_ASSERTIONS = set(DOCUMENT_ASSERTIONS) | {"hasDocuments", "failedTemplate"}


def _templates(suite: dict[str, Any], test: dict[str, Any]) -> list[str]:
    names = [test["template"]] if "template" in test else test.get("templates", suite.get("templates", []))
    if not names:
        raise SuiteError("no templates selected")
    return [n if n.startswith("templates/") else f"templates/{n}" for n in names]


def _kube_version(suite: dict[str, Any], test: dict[str, Any]) -> str:
    caps = {**suite.get("capabilities", {}), **test.get("capabilities", {})}
    if not caps:
        return KUBE_VERSION
    return f"{caps.get('majorVersion', 1)}.{caps['minorVersion']}.0"


def run_test(suite_path: Path, suite: dict[str, Any], test: dict[str, Any]) -> None:
    """Run one helm-unittest test case; raises :class:`SuiteError` on a failed assertion."""
    unknown = (set(suite) - SUPPORTED_SUITE_KEYS) | (set(test) - SUPPORTED_TEST_KEYS)
    if unknown:
        raise SuiteError(f"unsupported suite keys: {sorted(unknown)}")
    release = {**suite.get("release", {}), **test.get("release", {})}
    files = [(suite_path.parent / f).resolve() for f in [*suite.get("values", []), *test.get("values", [])]]
    error: str | None = None
    docs_by_template: dict[str, list[dict[str, Any]]] = {}
    try:
        for template in _templates(suite, test):
            docs_by_template[template] = render_chart(
                set_to_values(suite.get("set"), test.get("set")),
                show_only=[template],
                kube_version=_kube_version(suite, test),
                namespace=release.get("namespace", "NAMESPACE"),
                name=release.get("name", "release-name"),
                values_files=files,
            )
    except HelmError as err:
        error = str(err)

    for number, assertion in enumerate(test["asserts"]):
        kinds = set(assertion) - {"not", "template", "documentIndex"}
        if len(kinds) != 1 or not kinds <= SUPPORTED_ASSERTIONS:
            raise SuiteError(f"assert #{number}: unsupported assertion {sorted(kinds)}")
        (kind,) = kinds
        spec = assertion[kind] or {}
        negate = bool(assertion.get("not", False))
        where = f"assert #{number} ({kind})"

        if kind == "failedTemplate":
            if error is None:
                outcome = False
            elif "errorPattern" in spec:
                outcome = re.search(spec["errorPattern"], error) is not None
            else:
                outcome = spec.get("errorMessage", "") in error
            if outcome == negate:
                raise SuiteError(f"{where}: expected a rendering failure matching {spec}, got {error!r}")
            continue
        if error is not None:
            raise SuiteError(f"{where}: rendering failed: {error}")

        if "template" in assertion:
            docs = docs_by_template.get(_templates(suite, {"template": assertion["template"]})[0], [])
        else:
            docs = [d for template_docs in docs_by_template.values() for d in template_docs]
        if kind == "hasDocuments":
            if (len(docs) == spec["count"]) == negate:
                raise SuiteError(f"{where}: expected {spec['count']} documents, got {len(docs)}")
            continue
        index = assertion.get("documentIndex", test.get("documentIndex"))
        selected = [docs[index]] if index is not None and index < len(docs) else (docs if index is None else [])
        if not selected:
            raise SuiteError(f"{where}: no document rendered (documentIndex {index})")
        for doc in selected:
            if DOCUMENT_ASSERTIONS[kind](doc, spec) == negate:
                raise SuiteError(f"{where} failed on {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {spec}")

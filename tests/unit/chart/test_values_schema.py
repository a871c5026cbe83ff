"""values.schema.json is hand-written: it must cover every value in values.yaml, accept the
defaults, and refuse unknown keys where a typo would bite."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.helm_render import CHART_DIR, CHART_FIXTURES

pytestmark = pytest.mark.unit

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (keeping sibling keys such as ``description``)."""
    if "$ref" not in node:
        return node
    target: Any = SCHEMA
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


def _value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict):
            paths += _value_paths(value, f"{path}.")
    return paths


def _schema_node(path: str) -> dict[str, Any] | None:
    node = _resolve(SCHEMA)
    for key in path.split("."):
        props = node.get("properties", {})
        if key in props:
            node = _resolve(props[key])
        elif isinstance(node.get("additionalProperties"), dict):
            node = _resolve(node["additionalProperties"])
        else:
            return None
    return node


def _object_schemas(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    node = _resolve(node)
    found = [(path, node)] if "properties" in node else []
    for key, child in node.get("properties", {}).items():
        found += _object_schemas(child, f"{path}.{key}" if path else key)
    return found


ALL_VALUE_PATHS = _value_paths(VALUES)
FREE_FORM = ("SecurityContext", "seccompProfile", "capabilities", "resources.requests", "resources.limits",
             "resources.dump", "resources.upload")
BACKUP_OBJECTS = [
    (path, node) for path, node in _object_schemas(SCHEMA)
    if path.startswith("controlPlane.backup") and node.get("type") == "object"
    and not any(path.endswith(suffix) or f"{suffix}." in path for suffix in FREE_FORM)
]


class TestValuesSchema:
    def test_schema_is_valid_draft_07(self):
        jsonschema.Draft7Validator.check_schema(SCHEMA)

    def test_default_values_validate(self):
        jsonschema.Draft7Validator(SCHEMA).validate(VALUES)

    def test_values_paths_are_found(self):
        assert len(ALL_VALUE_PATHS) > 100

    def test_every_value_is_declared_in_the_schema(self):
        assert [path for path in ALL_VALUE_PATHS if _schema_node(path) is None] == []

    def test_every_declared_value_has_a_description(self):
        assert [path for path in ALL_VALUE_PATHS if not (_schema_node(path) or {}).get("description")] == []

    @pytest.mark.parametrize("path", [p for p, _ in BACKUP_OBJECTS])
    def test_unknown_keys_are_refused(self, path):
        assert dict(BACKUP_OBJECTS)[path]["additionalProperties"] is False

    def test_top_level_accepts_the_rest_of_agent_bom(self):
        """Values files of the full agent-bom chart (scanner, monitor, gateway ...) are accepted."""
        assert SCHEMA["additionalProperties"] is True

    def test_control_plane_accepts_the_rest_of_agent_bom(self):
        assert _schema_node("controlPlane")["additionalProperties"] is True

    def test_backup_block_stays_strict(self):
        assert _schema_node("controlPlane.backup")["additionalProperties"] is False

    def test_runbook_shape_is_required(self):
        assert set(_schema_node("controlPlane.backup")["required"]) >= {
            "enabled", "schedule", "serviceAccount", "destination"
        }

    def test_no_pattern_left_for_helm_to_print_raw(self):
        """Formats are checked by templates/_validate.tpl, with a sentence (tests/chart/test_bad_values.py)."""
        assert '"pattern"' not in (CHART_DIR / "values.schema.json").read_text()

    @pytest.mark.parametrize(
        "path",
        [
            "controlPlane.backup.destination.encryption.mode",
            "controlPlane.backup.concurrencyPolicy",
            "controlPlane.backup.destination.checksumMode",
            "controlPlane.backup.destination.storageClass",
            "controlPlane.backup.logging.level",
        ],
        ids=lambda v: v.rsplit(".", 1)[-1],
    )
    def test_closed_choices_are_enums(self, path):
        assert "enum" in _schema_node(path)

    def test_defaults_of_chart_0_1_0_validate(self):
        """`helm upgrade --reuse-values` validates the previous chart's defaults against this schema."""
        old = yaml.safe_load((CHART_FIXTURES / "chart-0.1.0-values.yaml").read_text())
        jsonschema.Draft7Validator(SCHEMA).validate(old)


def _leaf_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    leaves = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        leaves += _leaf_paths(value, f"{path}.") if isinstance(value, dict) and value else [path]
    return leaves


class TestValuesComments:
    """Every value is documented where it is declared (`## @param` for readme-generator)."""

    DOCUMENTED = set(re.findall(r"^\s*## @param (\S+)", VALUES_TEXT, flags=re.MULTILINE))

    def test_every_value_has_a_param_comment(self):
        assert [path for path in _leaf_paths(VALUES) if path not in self.DOCUMENTED] == []

    def test_no_param_comment_for_a_missing_value(self):
        assert self.DOCUMENTED <= set(_leaf_paths(VALUES))


def _defaulted_paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of values.yaml whose default is not null, nested keys included."""
    paths = []
    for key, value in values.items():
        if value is None:
            continue
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += _defaulted_paths(value, (*prefix, key))
    return paths


def _default_of(path: tuple[str, ...]) -> Any:
    node: Any = VALUES
    for key in path:
        node = node[key]
    return node


def _helm_merged_with_null(path: tuple[str, ...]) -> dict[str, Any]:
    """The values Helm validates after a user sets ``path`` to null: the key is gone."""
    values = copy.deepcopy(VALUES)
    node = values
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return values


CHART_0_1_0_VALUES = yaml.safe_load((CHART_FIXTURES / "chart-0.1.0-values.yaml").read_text())
#: keys with a default in this chart and in 0.1.0's: `helm upgrade --reuse-values` validates the
#: previous release's defaults against this schema, so a key 0.1.0 did not have cannot be required
#: (the templates read those with a default of their own: dig). ServiceAccount annotations are
#: left out: null there means "none", as the default {} does
#: (test_bad_values.py::test_null_service_account_annotations_render_as_none).
DEFAULTED = [p for p in _defaulted_paths(VALUES) if p in set(_defaulted_paths(CHART_0_1_0_VALUES))
             and not (p[-1] == "annotations" and _default_of(p) == {})]


class TestNullNeverErasesADefault:
    """`key:` with nothing after it is YAML null, and Helm deletes a null key before it
    validates and renders: the default is gone (helmTest: nil pointer; objectStorage.ports:
    every port; startingDeadlineSeconds: 0). Every key with a default (since 0.1.0) is
    required, so the schema refuses it with one line naming the key
    (tests/chart/test_bad_values.py renders three of them with Helm 3 and 4)."""

    def test_the_walk_finds_the_keys(self):
        assert {("controlPlane", "backup", "helmTest"), ("controlPlane", "backup", "startingDeadlineSeconds"),
                ("controlPlane", "backup", "networkPolicy", "objectStorage", "ports")} <= set(DEFAULTED)

    @pytest.mark.parametrize("path", DEFAULTED, ids=".".join)
    def test_null_is_refused_in_one_line_naming_the_key(self, path):
        errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(_helm_merged_with_null(path)))
        assert [(list(e.path), e.validator, e.message) for e in errors] == [
            (list(path[:-1]), "required", f"'{path[-1]}' is a required property")]

    @pytest.mark.parametrize("path", DEFAULTED, ids=".".join)
    def test_the_type_of_a_key_with_a_default_excludes_null(self, path):
        node = _schema_node(".".join(path))
        assert node is not None and "null" not in (node.get("type") or [])

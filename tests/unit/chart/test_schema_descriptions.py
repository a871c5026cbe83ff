"""One source for what a value means: values.schema.json's descriptions are written from the
`## @param` lines of values.yaml by scripts/gen_schema_descriptions.py, and CI fails when they
drift (the README table comes from the same lines)."""

from __future__ import annotations

import json

import pytest

import gen_schema_descriptions as gen
from tests.chart.helm_render import CHART_DIR

pytestmark = pytest.mark.unit

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
PARAMS = gen.param_descriptions((CHART_DIR / "values.yaml").read_text())


def test_schema_descriptions_are_not_stale(capsys):
    assert gen.main(["--check"]) == 0, capsys.readouterr().err


def test_a_description_is_the_param_text():
    assert gen.own_node(SCHEMA, "controlPlane.backup.schedule")["description"] == (
        "Cron schedule of the backup (five fields or a macro such as `@daily`), evaluated in `timeZone`"
    )


def test_modifiers_are_not_part_of_the_text():
    assert PARAMS["controlPlane.backup.ttlSecondsAfterFinished"].startswith("Delete finished Jobs")


def test_an_edited_param_line_makes_the_schema_stale(tmp_path, monkeypatch):
    """Guards the first test: a @param edited alone no longer matches the committed schema."""
    values = tmp_path / "values.yaml"
    values.write_text(gen.VALUES.read_text().replace(
        "## @param controlPlane.backup.schedule Cron schedule", "## @param controlPlane.backup.schedule When"))
    monkeypatch.setattr(gen, "VALUES", values)
    assert gen.render() != gen.SCHEMA.read_text()


def test_constraints_are_kept():
    """Only descriptions are written: the schema stripped of them is the hand-written one."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "description"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    assert strip(json.loads(gen.render())) == strip(SCHEMA)


def _description_problem(path: str) -> str | None:
    """None when ``path``'s schema node carries its @param text (or the value sits under a
    shared $ref, whose definition keeps its own text)."""
    node, parent = SCHEMA, None
    for key in path.split("."):
        parent, node = node, node.get("properties", {}).get(key)
        if node is None:
            return None if "$ref" in parent else f"{path} is not in values.schema.json"
    return None if node["description"] == PARAMS[path] else f"{path}: the description is not the @param text"


def test_every_param_has_its_own_node_or_a_shared_definition():
    assert [problem for path in sorted(PARAMS) if (problem := _description_problem(path))] == []


def test_a_param_missing_from_the_schema_is_found():
    """Guards the test above: a @param the schema lacks is named."""
    assert _description_problem("controlPlane.backup.noSuchValue") == (
        "controlPlane.backup.noSuchValue is not in values.schema.json")

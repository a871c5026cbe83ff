"""Write the chart values' descriptions into values.schema.json from the `## @param` lines of
values.yaml: one source for what a value means (the README table is generated from the same
lines by readme-generator). ``--check`` fails when the schema on disk differs (run by the tests).

Only ``description`` fields change: types, ``required``, enums and ranges stay hand-written. A
value reached through a shared definition (``$ref``: the CA bundles, resources and scratch
volumes of several components) keeps the definition's description, which every user of it shares;
objects without an ``@param`` line (``controlPlane.backup.destination``...) keep theirs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from devstack import pages

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "agent-bom"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
COMMAND = "scripts/gen_schema_descriptions.py"

#: `## @param PATH [modifier] [modifier] Description` (readme-generator's syntax)
PARAM = re.compile(r"^\s*## @param (\S+)\s+((?:\[[^\]]*\]\s*)*)(.*)$", re.MULTILINE)


def param_descriptions(values_text: str) -> dict[str, str]:
    """Value path -> its @param description, modifiers such as [nullable] dropped."""
    return {path: text.strip() for path, _modifiers, text in PARAM.findall(values_text)}


def own_node(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema node of ``path`` that belongs to it alone, or None when the path goes through
    a shared ``$ref`` definition or is not declared."""
    node = schema
    for key in path.split("."):
        child = node.get("properties", {}).get(key)
        if child is None:
            return None
        node = child
    return node


def described(schema: dict[str, Any], descriptions: dict[str, str]) -> dict[str, Any]:
    """A copy of ``schema`` whose own nodes carry the @param descriptions."""
    schema = json.loads(json.dumps(schema))
    for path, text in descriptions.items():
        node = own_node(schema, path)
        if node is not None:
            node["description"] = text
    return schema


def render() -> str:
    schema = json.loads(SCHEMA.read_text())
    return json.dumps(described(schema, param_descriptions(VALUES.read_text())), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    return pages.generate(SCHEMA, render, command=COMMAND, description=__doc__, argv=argv)


if __name__ == "__main__":
    sys.exit(main())

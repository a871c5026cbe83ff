"""The chart ⇄ CLI interface (deploy/helm/agent-bom/interface.json) without helm: every
variable it names is one the CLI reads, every component has a template (that each value
reaches its variable in the rendered chart is tests/chart/test_interface.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.test_interface import COMPONENTS, ENTRIES, INTERFACE, cli_envvars


@pytest.mark.parametrize(("component", "entry"), ENTRIES, ids=[e["env"] for _, e in ENTRIES])
def test_every_interface_variable_is_read_by_the_cli(component: str, entry: dict[str, Any]) -> None:
    assert entry["env"] in cli_envvars()


def test_every_component_of_the_interface_has_a_template() -> None:
    assert sorted(c for c in INTERFACE if not c.startswith("_")) == sorted(COMPONENTS)

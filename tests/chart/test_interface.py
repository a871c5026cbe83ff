"""The chart ⇄ CLI interface (deploy/helm/agent-bom/interface.json): each chart value
reaches the CLI through the environment variable the CLI reads."""

from __future__ import annotations

import json
from typing import Any

import click
import pytest

from agent_bom_backup.cli import main as cli_main
from tests.chart.helm_render import (
    deep_merge,
    CHART_DIR,
    CRONJOB_TEMPLATE,
    RESTORE_DRILL_TEMPLATE,
    RESTORE_TEMPLATE,
    RETENTION_TEMPLATE,
    backup_values,
    env_map,
    own_role,
    render_chart,
)

INTERFACE = json.loads((CHART_DIR / "interface.json").read_text())
#: component -> (its template, the values that turn it on)
COMPONENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "backup": (CRONJOB_TEMPLATE, {}),
    "restoreDrill": (RESTORE_DRILL_TEMPLATE,
                     {"restoreDrill": {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
                                       **own_role("agent-bom-restore-drill")}}),
    "restore": (RESTORE_TEMPLATE, {"restore": {"enabled": True, "target": {"existingSecret": "restore-target"},
                                               **own_role("agent-bom-restore")}}),
    "retention": (RETENTION_TEMPLATE, {"retentionDays": 30, "retention": own_role("agent-bom-prune")}),
}
ENTRIES = [(component, e) for component, entries in INTERFACE.items() if not component.startswith("_") for e in entries]


def nested(path: str, value: Any) -> dict[str, Any]:
    result: Any = value
    for key in reversed(path.split(".")):
        result = {key: result}
    return result


def rendered_env(component: str, entry: dict[str, Any]) -> dict[str, Any]:
    template, enabling = COMPONENTS[component]
    overrides: dict[str, Any] = {}
    deep_merge(overrides, enabling)
    if entry["value"].startswith("destination.caBundle"):
        deep_merge(overrides, {"destination": {"endpointUrl": "https://minio.example:9000"}})
    deep_merge(overrides, entry.get("also", {}))
    deep_merge(overrides, nested(entry["value"], entry["sample"]))
    return env_map(render_chart(backup_values(**overrides), show_only=[template])[0])


def cli_envvars() -> set[str]:
    ctx = click.Context(cli_main)
    names: set[str] = set()
    for name in cli_main.list_commands(ctx):
        command = cli_main.get_command(ctx, name)
        assert command is not None
        names |= {p.envvar for p in command.params if isinstance(getattr(p, "envvar", None), str)}
    return names | {"AGENT_BOM_POSTGRES_URL"}


@pytest.mark.parametrize(("component", "entry"), ENTRIES, ids=[e["env"] for _, e in ENTRIES])
def test_chart_value_reaches_its_environment_variable(component: str, entry: dict[str, Any]) -> None:
    value = rendered_env(component, entry)[entry["env"]]
    expected = entry["expect"] if entry["expect"] is not None else value
    assert value == expected and value is not None


@pytest.mark.parametrize(
    ("component", "entry"),
    [(c, e) for c, e in ENTRIES if e["env"].endswith("POSTGRES_URL")],
    ids=lambda x: x["env"] if isinstance(x, dict) else x,
)
def test_database_urls_come_from_the_named_secret(component: str, entry: dict[str, Any]) -> None:
    assert rendered_env(component, entry)[entry["env"]]["secretKeyRef"]["name"] == entry["sample"]


def test_every_cli_variable_the_backup_cronjob_sets_is_documented() -> None:
    documented = {e["env"] for e in INTERFACE["backup"]}
    values = backup_values(destination={"endpointUrl": "https://minio.example:9000", "caBundle": {"secretName": "ca"}},
                           metricsFile="/tmp/m.prom")
    rendered = env_map(render_chart(values, show_only=[CRONJOB_TEMPLATE])[0])
    assert {name for name in rendered if name.startswith("AGENT_BOM_")} - documented == set()


def test_the_backup_gets_its_memory_limit_from_the_downward_api() -> None:
    """The CLI's memory budget is 60% of this (docs/limits.md); the kubelet fills it in."""
    rendered = env_map(render_chart(backup_values(), show_only=[CRONJOB_TEMPLATE])[0])
    assert rendered["AGENT_BOM_BACKUP_MEMORY_LIMIT"] == {"resourceFieldRef": {"resource": "limits.memory"}}

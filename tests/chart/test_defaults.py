"""Chart defaults live in values.yaml. A template that must default a key itself (`helm upgrade
--reuse-values` from 0.1.0 renders with 0.1.0's values.yaml, which lacks every key added since)
takes the default from one helper, agent-bom.defaults in templates/_helpers.tpl: each of its
values equals values.yaml's, no template carries a literal default of its own, and a default
changed in values.yaml is what renders."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm_render import (
    CHART_DIR,
    RETENTION_TEMPLATE,
    backup_values,
    env_map,
    own_role,
    render_chart,
    render_notes,
)

HELPERS = CHART_DIR / "templates" / "_helpers.tpl"
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def helper_defaults() -> dict[str, Any]:
    """The body of agent-bom.defaults (plain YAML, relative to controlPlane.backup)."""
    match = re.search(r'\{\{- define "agent-bom.defaults" -\}\}\n(.*?)\{\{- end \}\}', HELPERS.read_text(), re.DOTALL)
    assert match, "agent-bom.defaults not found in _helpers.tpl"
    return yaml.safe_load(match.group(1))


def _leaves(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf; lists and the resources maps count as one value each."""
    leaves = []
    for key, value in node.items():
        path = (*prefix, key)
        if isinstance(value, dict) and key != "resources":
            leaves += _leaves(value, path)
        else:
            leaves.append((path, value))
    return leaves


def _values_yaml_default(path: tuple[str, ...]) -> Any:
    node: Any = VALUES["controlPlane"]["backup"]
    for key in path:
        node = node[key]
    return node


DEFAULTS = _leaves(helper_defaults())

#: `dig KEYS... LITERAL MAP` or `| default LITERAL` / `(default LITERAL ...)`, where LITERAL is a non-empty string, a number
#: other than 0, true, or a (list ...) / (dict ...) with elements
_LITERAL = r'"[^"]+"|[1-9][0-9]*|true|\((?:list|dict) [^)]+\)'
LITERAL_DEFAULT = re.compile(
    rf'\bdig(?: "[^"]*")+ (?P<dug>{_LITERAL}) +(?:\$[\w.]*|\.[\w.]*) *(?:-?\}}\}}|\)|\|)'
    rf'|\| *default (?P<default>{_LITERAL})|\(default (?P<call>{_LITERAL}) '
)
#: literal defaults that are not a copy of a values.yaml default, and why
NOT_VALUES_DEFAULTS = {
    '"in-cluster-restore"': "restore.operator: an empty operator is named in-cluster-restore",
    '"unset"': "a sentinel telling an unset allowPrivilegeEscalation from false",
    "true": 'dig "database" true: a helper argument ("database" false leaves the CA volume out)',
}



@pytest.mark.unit
class TestOneSourceOfDefaults:
    def test_helper_has_defaults(self):
        assert len(DEFAULTS) > 20

    @pytest.mark.parametrize(("path", "value"), DEFAULTS, ids=[".".join(p) for p, _ in DEFAULTS])
    def test_helper_default_equals_values_yaml(self, path, value):
        assert value == _values_yaml_default(path)

    def test_guard_sees_a_literal_default(self):
        """Guards the next test: the pattern finds the literals this change removed."""
        assert LITERAL_DEFAULT.search('{{ dig "keepLast" 7 $r | int64 }}')
        assert LITERAL_DEFAULT.search('{{ $pg.timeout | default 10 | quote }}')
        assert not LITERAL_DEFAULT.search('{{ dig "keepLast" $defaults.keepLast $r | int64 }}')

    @pytest.mark.parametrize("template", sorted(p.name for p in (CHART_DIR / "templates").rglob("*") if p.is_file()))
    def test_no_literal_default_outside_the_helper(self, template):
        (path,) = (p for p in (CHART_DIR / "templates").rglob(template) if p.is_file())
        text = path.read_text()
        if path == HELPERS:
            text = re.sub(r'\{\{- define "agent-bom.defaults" -\}\}.*?\{\{- end \}\}', "", text, flags=re.DOTALL)
        code = re.sub(r"\{\{-? /\*.*?\*/ -?\}\}", "", text, flags=re.DOTALL)  # comments
        found = [m.group(0) for m in LITERAL_DEFAULT.finditer(code) if (m.group("dug") or m.group("default") or m.group("call")) not in NOT_VALUES_DEFAULTS]
        assert found == [], "take these defaults from agent-bom.defaults (templates/_helpers.tpl)"


#: values that turn on every template that defaults a key itself, without setting those keys
FEATURES = backup_values(
    restore={"enabled": True, "target": {"existingSecret": "restore-target"},
             "liveSourceCheck": {"existingSecret": "restore-live-source"},
             "encryption": {"existingSecret": "age-identity"}, **own_role("agent-bom-restore")},
    restoreDrill={"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
                  "liveSourceCheck": {"existingSecret": "drill-live-source"},
                  "encryption": {"existingSecret": "age-identity"}, **own_role("agent-bom-restore-drill")},
    retentionDays=30,
    retention=own_role("agent-bom-prune"),
    # the schema requires every key of clientEncryption once it is set
    clientEncryption={"recipients": [], "recipientsConfigMap": "age-recipients", "recipientsConfigMapKey": "recipients"},
    networkPolicy={"enabled": True, "database": {"cidrs": ["10.0.0.0/16"]}, "dns": {"nodeLocal": {"enabled": True}},
                   "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}]},
    metrics={"pushgateway": {"url": "http://pushgateway.monitoring:9091"}},
    notify={"existingSecret": "agent-bom-notify"},
)


def _chart_copy(tmp_path: Path, edit) -> Path:
    chart = tmp_path / "agent-bom"
    shutil.copytree(CHART_DIR, chart, ignore=lambda folder, _: ["tests", "ci"] if Path(folder) == CHART_DIR else [])
    values = copy.deepcopy(VALUES)
    edit(values["controlPlane"]["backup"])
    (chart / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return chart


CHART_0_1_0_BACKUP = yaml.safe_load((Path(__file__).parent / "fixtures" / "chart-0.1.0-values.yaml").read_text())[
    "controlPlane"]["backup"]


def _without_new_keys(backup: dict[str, Any]) -> None:
    """Delete what chart 0.1.0's values.yaml lacked of the helper's keys (the outermost new key)."""
    for path, _ in DEFAULTS:
        node, old = backup, CHART_0_1_0_BACKUP
        for key in path:
            if key not in old:
                node.pop(key, None)
                break
            node, old = node[key], old[key]


class TestValuesYamlLacksTheKeys:
    """What `--reuse-values` from a chart without these keys renders: the helper's defaults."""

    def test_renders_what_values_yaml_renders(self, tmp_path):
        chart = _chart_copy(tmp_path, _without_new_keys)
        assert render_chart(FEATURES, chart=chart) == render_chart(FEATURES)

    def test_notes_say_what_values_yaml_says(self, tmp_path):
        chart = _chart_copy(tmp_path, _without_new_keys)
        assert render_notes(FEATURES, chart=chart) == render_notes(FEATURES)


def test_a_default_changed_in_values_yaml_renders(tmp_path):
    """The helper only fills keys values.yaml lacks: values.yaml's own default is what renders."""
    chart = _chart_copy(tmp_path, lambda backup: backup["retention"].update(keepLast=9))
    values = backup_values(retentionDays=30, retention=own_role("agent-bom-prune"))
    (doc,) = render_chart(values, chart=chart, show_only=[RETENTION_TEMPLATE])
    assert env_map(doc)["AGENT_BOM_PRUNE_KEEP_LAST"] == "9"

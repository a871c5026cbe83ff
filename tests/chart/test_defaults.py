"""Chart defaults live in values.yaml. A template that must default a key itself (`helm upgrade
--reuse-values` from 0.1.0 renders with 0.1.0's values.yaml, which lacks every key added since)
takes the default from one helper, agent-bom.defaults in templates/_helpers.tpl: each of its
values equals values.yaml's, no template carries a literal default of its own, and a default
changed in values.yaml is what renders."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

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
from tests.unit.chart.test_chart_defaults import DEFAULTS, VALUES


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

"""The PrometheusRule's alerts evaluated by Prometheus itself: `promtool test rules` over
the rules rendered by helm (release agent-bom, drill and retention on, maxAgeHours 2) and
the series of tests/chart/promtool/alerts_test.yaml: a success, a pod failure fixed by the Job's retry,
two failed Jobs then a success, a suspended CronJob, no backup ever, a failed drill, a
failed retention run, and pushed metrics without kube-state-metrics.

The rules go to promtool without their annotations (promtool compares annotations too, and
they do not decide what fires); test_prometheusrule.py checks the annotations."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from devstack import tools
from tests.chart.helm_render import PROMETHEUSRULE_TEMPLATE, backup_values, own_role, render_chart

TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
VALUES = {
    "prometheusRule": {"enabled": True, "maxAgeHours": 2},
    "restoreDrill": {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
                     **own_role("agent-bom-restore-drill")},
    "retentionDays": 30,
    "retention": own_role("agent-bom-prune"),
}


def _rules() -> dict[str, Any]:
    (doc,) = render_chart(backup_values(**VALUES), show_only=[PROMETHEUSRULE_TEMPLATE], namespace="agent-bom",
                          name="agent-bom")
    groups = doc["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return {"groups": groups}


def _promtool(tmp_path: Path, rules: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    return subprocess.run([str(tools.promtool_binary()), "test", "rules", TESTS.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_alerts_fire_and_clear_as_the_scenarios_say(tmp_path: Path) -> None:
    result = _promtool(tmp_path, _rules())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scenarios_catch_an_alert_on_failed_pods(tmp_path: Path) -> None:
    """Guards the test above: the rule this chart had (kube_job_status_failed counts failed
    pods) fires for a Job whose retry succeeded, and the scenarios say so."""
    rules = _rules()
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "AgentBomControlPlaneBackupJobFailed":
                rule["expr"] = ('max by (namespace, job_name) (kube_job_status_failed{namespace="agent-bom", '
                                'job_name=~"agent-bom-control-plane-backup-.+"}) > 0')
    result = _promtool(tmp_path, rules)
    output = result.stdout + result.stderr
    assert (result.returncode, "name: fail-then-retry-success" in output) == (1, True), output

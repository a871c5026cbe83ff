"""templates/prometheusrule.yaml: alerts when no backup succeeded within N hours
(kube-state-metrics `kube_cronjob_status_last_successful_time`) and on failed Jobs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import (
    PROMETHEUSRULE_TEMPLATE,
    ManifestValidationError,
    backup_values,
    own_role,
    render_chart,
    validate_prometheusrule,
)

DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
         **own_role("agent-bom-restore-drill")}
RETENTION = {"retentionDays": 30, "retention": own_role("agent-bom-prune")}
SELECTOR = 'namespace="agent-bom", cronjob="agent-bom-control-plane-backup"'


def _rule(**overrides: Any) -> dict[str, Any]:
    values = backup_values(prometheusRule={"enabled": True, **overrides.pop("prometheusRule", {})}, **overrides)
    (doc,) = render_chart(values, show_only=[PROMETHEUSRULE_TEMPLATE])
    return doc


def _alerts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in doc["spec"]["groups"] for r in g["rules"]}


class TestPrometheusRule:
    TEMPLATE = PROMETHEUSRULE_TEMPLATE

    def test_off_by_default(self):
        assert render_chart(backup_values(), show_only=[self.TEMPLATE]) == []

    def test_validates_against_the_crd_openapi_schema(self, prometheusrule_openapi_schema):
        validate_prometheusrule(_rule(restoreDrill=DRILL, **RETENTION), prometheusrule_openapi_schema)

    @pytest.mark.parametrize(
        ("path", "bad"),
        [
            (("spec", "groups", 0, "rules", 0, "expr"), ["not", "a", "string"]),
            (("spec", "groups", 0, "rules", 0, "for"), "26 hours"),
            (("spec", "groups", 0, "name"), ""),
        ],
        ids=["expr-not-string", "for-not-duration", "empty-group-name"],
    )
    def test_crd_schema_rejects_a_broken_rule(self, prometheusrule_openapi_schema, path, bad):
        """Guards the check above: the schema is strict enough to fail."""
        broken = _rule()
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        with pytest.raises(ManifestValidationError):
            validate_prometheusrule(broken, prometheusrule_openapi_schema)

    def test_selection_labels_are_added(self):
        doc = _rule(prometheusRule={"labels": {"release": "kube-prometheus-stack"}})
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    @pytest.mark.parametrize(("hours", "seconds"), [(1, 3600), (26, 93600), (48, 172800)], ids=["1h", "26h", "48h"])
    def test_stale_threshold_follows_max_age(self, hours, seconds):
        expr = _alerts(_rule(prometheusRule={"maxAgeHours": hours}))["AgentBomControlPlaneBackupTooOld"]["expr"]
        assert expr.endswith(f"> {seconds}")

    def test_absent_metric_alert(self):
        alert = _alerts(_rule())["AgentBomControlPlaneBackupNeverSucceeded"]
        assert (alert["expr"], alert["for"]) == (f"absent(kube_cronjob_status_last_successful_time{{{SELECTOR}}})", "26h")

    def test_failed_job_alert_matches_the_cronjobs_jobs(self):
        expr = _alerts(_rule())["AgentBomControlPlaneBackupJobFailed"]["expr"]
        assert expr == (
            'max by (namespace, job_name) (kube_job_status_failed{namespace="agent-bom", '
            'job_name=~"agent-bom-control-plane-backup-.+"}) > 0'
        )

    @pytest.mark.parametrize(
        ("alert", "severity"),
        [
            ("AgentBomControlPlaneBackupTooOld", "critical"),
            ("AgentBomControlPlaneBackupNeverSucceeded", "critical"),
            ("AgentBomControlPlaneBackupJobFailed", "warning"),
        ],
        ids=["too-old", "never-succeeded", "job-failed"],
    )
    def test_default_severities(self, alert, severity):
        assert _alerts(_rule())[alert]["labels"]["severity"] == severity

    def test_severity_follows_value(self):
        alerts = _alerts(_rule(prometheusRule={"severity": "page"}))
        assert alerts["AgentBomControlPlaneBackupTooOld"]["labels"]["severity"] == "page"

    def test_no_drill_alert_without_the_drill(self):
        assert "AgentBomControlPlaneRestoreDrillFailed" not in _alerts(_rule())

    def test_drill_alert_with_the_drill(self):
        expr = _alerts(_rule(restoreDrill=DRILL))["AgentBomControlPlaneRestoreDrillFailed"]["expr"]
        assert 'job_name=~"agent-bom-control-plane-restore-drill-.+"' in expr

    def test_no_retention_alert_without_retention(self):
        assert "AgentBomControlPlaneRetentionFailed" not in _alerts(_rule())

    def test_retention_alert_with_retention(self):
        expr = _alerts(_rule(**RETENTION))["AgentBomControlPlaneRetentionFailed"]["expr"]
        assert 'job_name=~"agent-bom-control-plane-retention-.+"' in expr

    def test_selector_follows_release_namespace(self):
        values = backup_values(prometheusRule={"enabled": True})
        (doc,) = render_chart(values, show_only=[self.TEMPLATE], namespace="platform")
        assert 'namespace="platform"' in _alerts(doc)["AgentBomControlPlaneBackupTooOld"]["expr"]

    def test_annotations_keep_prometheus_templates(self):
        description = _alerts(_rule())["AgentBomControlPlaneBackupTooOld"]["annotations"]["description"]
        assert "{{ $value | humanizeDuration }}" in description

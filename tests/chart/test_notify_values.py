"""controlPlane.backup.metrics.pushgateway and controlPlane.backup.notify: how each job's
container learns where to push its metrics and whom to ping (templates/_notify.tpl), and
what NOTES says about the NetworkPolicy. One behaviour per test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import (
    CRONJOB_TEMPLATE,
    RESTORE_DRILL_TEMPLATE,
    RESTORE_TEMPLATE,
    RETENTION_TEMPLATE,
    HelmError,
    backup_values,
    env_map,
    own_role,
    refusal,
    render_chart,
    render_notes,
)

DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
         **own_role("agent-bom-restore-drill")}
RESTORE = {"enabled": True, "target": {"existingSecret": "restore-target"}, **own_role("agent-bom-restore")}
PUSHGATEWAY = {"pushgateway": {"url": "http://pushgateway.monitoring:9091"}}
NOTIFY = {"existingSecret": "agent-bom-notify"}
#: template, values that turn it on, its CronJob name, kind and ping key
JOBS = [
    (CRONJOB_TEMPLATE, {}, "agent-bom-control-plane-backup", "backup", "backupPingUrl"),
    (RESTORE_DRILL_TEMPLATE, {"restoreDrill": DRILL}, "agent-bom-control-plane-restore-drill", "drill", "drillPingUrl"),
    (RETENTION_TEMPLATE, {"retentionDays": 30, "retention": own_role("agent-bom-prune")},
     "agent-bom-control-plane-retention", "retention", "retentionPingUrl"),
    (RESTORE_TEMPLATE, {"restore": RESTORE}, "agent-bom-control-plane-restore", "restore", "restorePingUrl"),
]
JOB_IDS = ["backup", "drill", "retention", "restore"]
MONITOR_ENV = ("AGENT_BOM_BACKUP_CRONJOB", "AGENT_BOM_BACKUP_PUSHGATEWAY_URL", "AGENT_BOM_BACKUP_PING_URL",
               "AGENT_BOM_BACKUP_WEBHOOK_URL")


def _env(template: str = CRONJOB_TEMPLATE, **overrides: Any) -> dict[str, Any]:
    (doc,) = render_chart(backup_values(**overrides), show_only=[template])
    return env_map(doc)


class TestPushgateway:
    def test_nothing_is_pushed_or_pinged_by_default(self):
        assert [name for name in MONITOR_ENV if name in _env()] == []

    def test_url_reaches_the_job(self):
        assert _env(metrics=PUSHGATEWAY)["AGENT_BOM_BACKUP_PUSHGATEWAY_URL"] == "http://pushgateway.monitoring:9091"

    @pytest.mark.parametrize(("template", "enabling", "cronjob", "kind", "key"), JOBS, ids=JOB_IDS)
    def test_grouping_key_is_the_cronjob_name(self, template, enabling, cronjob, kind, key):
        assert _env(template, metrics=PUSHGATEWAY, **enabling)["AGENT_BOM_BACKUP_CRONJOB"] == cronjob

    def test_grouping_namespace_is_the_release_namespace(self):
        (doc,) = render_chart(backup_values(metrics=PUSHGATEWAY), show_only=[CRONJOB_TEMPLATE], namespace="platform")
        assert env_map(doc)["AGENT_BOM_BACKUP_NAMESPACE"] == "platform"

    def test_timeout_defaults_to_ten_seconds(self):
        assert _env(metrics=PUSHGATEWAY)["AGENT_BOM_BACKUP_PUSHGATEWAY_TIMEOUT"] == "10"

    @pytest.mark.parametrize(("env", "key"), [("AGENT_BOM_BACKUP_PUSHGATEWAY_USERNAME", "username"),
                                              ("AGENT_BOM_BACKUP_PUSHGATEWAY_PASSWORD", "password"),
                                              ("AGENT_BOM_BACKUP_PUSHGATEWAY_AUTHORIZATION", "authorization")],
                             ids=["username", "password", "authorization"])
    def test_credentials_come_from_optional_secret_keys(self, env, key):
        metrics = {"pushgateway": {**PUSHGATEWAY["pushgateway"], "existingSecret": "pgw-auth"}}
        assert _env(metrics=metrics)[env] == {"secretKeyRef": {"name": "pgw-auth", "key": key, "optional": True}}

    def test_no_credentials_without_the_secret(self):
        assert "AGENT_BOM_BACKUP_PUSHGATEWAY_PASSWORD" not in _env(metrics=PUSHGATEWAY)

    def test_url_must_be_http(self):
        assert refusal(backup_values(metrics={"pushgateway": {"url": "pushgateway:9091"}})) == [
            "controlPlane.backup.metrics.pushgateway.url is malformed: an http(s) URL "
            "(e.g. http://prometheus-pushgateway.monitoring:9091)"]


class TestNotify:
    @pytest.mark.parametrize(("template", "enabling", "cronjob", "kind", "key"), JOBS, ids=JOB_IDS)
    def test_each_job_pings_its_own_check(self, template, enabling, cronjob, kind, key):
        assert _env(template, notify=NOTIFY, **enabling)["AGENT_BOM_BACKUP_PING_URL"] == {
            "secretKeyRef": {"name": "agent-bom-notify", "key": key, "optional": True}}

    @pytest.mark.parametrize(("template", "enabling", "cronjob", "kind", "key"), JOBS, ids=JOB_IDS)
    def test_each_job_says_what_it_is(self, template, enabling, cronjob, kind, key):
        assert _env(template, notify=NOTIFY, **enabling)["AGENT_BOM_BACKUP_JOB_KIND"] == kind

    def test_one_webhook_for_every_job(self):
        assert _env(notify=NOTIFY)["AGENT_BOM_BACKUP_WEBHOOK_URL"] == {
            "secretKeyRef": {"name": "agent-bom-notify", "key": "webhookUrl", "optional": True}}

    def test_ping_style_defaults_to_healthchecks(self):
        assert _env(notify=NOTIFY)["AGENT_BOM_BACKUP_PING_STYLE"] == "healthchecks"

    def test_ping_style_follows_value(self):
        assert _env(notify={**NOTIFY, "pingStyle": "uptime-kuma"})["AGENT_BOM_BACKUP_PING_STYLE"] == "uptime-kuma"

    def test_unknown_ping_style_is_refused(self):
        with pytest.raises(HelmError, match="pingStyle"):
            render_chart(backup_values(notify={**NOTIFY, "pingStyle": "pagerduty"}), show_only=[CRONJOB_TEMPLATE])

    def test_notification_urls_never_appear_as_plain_values(self):
        env = _env(notify=NOTIFY)
        assert [name for name in ("AGENT_BOM_BACKUP_PING_URL", "AGENT_BOM_BACKUP_WEBHOOK_URL")
                if not isinstance(env[name], dict)] == []


class TestNotes:
    NETWORK_POLICY = {"enabled": True, "database": {"cidrs": ["10.0.0.0/16"]}}

    def test_warns_when_notifications_cannot_leave_the_network_policy(self):
        notes = render_notes(backup_values(notify=NOTIFY, networkPolicy=self.NETWORK_POLICY))
        assert "controlPlane.backup.networkPolicy.extraEgress" in notes

    def test_warns_for_the_pushgateway_too(self):
        notes = render_notes(backup_values(metrics=PUSHGATEWAY, networkPolicy=self.NETWORK_POLICY))
        assert "every push to the Pushgateway will fail" in " ".join(notes.split())

    def test_no_warning_with_extra_egress(self):
        policy = {**self.NETWORK_POLICY, "extraEgress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                                          "ports": [{"protocol": "TCP", "port": 443}]}]}
        notes = render_notes(backup_values(notify=NOTIFY, networkPolicy=policy))
        assert "WARNING: the NetworkPolicy" not in notes

    def test_no_warning_without_a_network_policy(self):
        assert "WARNING: the NetworkPolicy" not in render_notes(backup_values(notify=NOTIFY))

    def test_names_the_notification_secret(self):
        assert "pings and webhook from Secret agent-bom-notify" in render_notes(backup_values(notify=NOTIFY))

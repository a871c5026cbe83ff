"""`helm upgrade --reuse-values --set controlPlane.backup.enabled=true|false` creates and
removes the resources; other `--set` overrides on top of reused values keep working.

Reused values are modelled as the previous release's values file plus `--set` overrides,
which is how `--reuse-values` layers them."""

from __future__ import annotations

import pytest

from tests.chart.helm_render import CHART_DIR, HELM_MAJORS, HelmError, render_chart

RUNBOOK = CHART_DIR / "ci" / "runbook-minimal-values.yaml"
ALL_FEATURES = CHART_DIR / "ci" / "all-features-values.yaml"
DISABLED = CHART_DIR / "ci" / "disabled-values.yaml"


def _kinds(docs):
    return sorted((d["kind"], d["metadata"]["name"]) for d in docs)


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
class TestUpgradeToggle:
    def test_enabled_release_has_cronjob_and_service_account(self, helm_major):
        assert _kinds(render_chart(values_files=[RUNBOOK], helm_major=helm_major)) == [
            ("CronJob", "agent-bom-control-plane-backup"),
            ("ServiceAccount", "agent-bom-control-plane-backup"),
        ]

    def test_disabling_removes_everything(self, helm_major):
        docs = render_chart(values_files=[RUNBOOK], set_values=["controlPlane.backup.enabled=false"], helm_major=helm_major)
        assert docs == []

    def test_disabling_removes_every_optional_extra(self, helm_major):
        docs = render_chart(values_files=[ALL_FEATURES], set_values=["controlPlane.backup.enabled=false"],
                            helm_major=helm_major)
        assert docs == []

    def test_reenabling_restores_the_same_resources(self, helm_major):
        previous = render_chart(values_files=[RUNBOOK], helm_major=helm_major)
        toggled = render_chart(values_files=[RUNBOOK], set_values=["controlPlane.backup.enabled=true"], helm_major=helm_major)
        assert toggled == previous

    def test_enabling_from_disabled_with_set_flags(self, helm_major):
        docs = render_chart(
            values_files=[DISABLED],
            set_values=[
                "controlPlane.backup.enabled=true",
                "controlPlane.backup.destination.bucket=agent-bom-prod-backups",
                "controlPlane.backup.destination.bucketRegion=eu-west-1",
            ],
            helm_major=helm_major,
        )
        assert ("CronJob", "agent-bom-control-plane-backup") in _kinds(docs)

    def test_set_override_keeps_reused_values(self, helm_major):
        (cronjob,) = [
            d for d in render_chart(values_files=[ALL_FEATURES], set_values=["controlPlane.backup.schedule=15 1 * * *"],
                                    helm_major=helm_major)
            if d["metadata"]["name"] == "agent-bom-control-plane-backup" and d["kind"] == "CronJob"
        ]
        assert (cronjob["spec"]["schedule"], cronjob["spec"]["timeZone"]) == ("15 1 * * *", "Etc/UTC")

    def test_set_override_of_a_nested_value(self, helm_major):
        docs = render_chart(values_files=[RUNBOOK], set_values=["controlPlane.backup.destination.encryption.mode=AES256",
                                                                "controlPlane.backup.destination.encryption.kmsKeyId="],
                            helm_major=helm_major)
        (cronjob,) = [d for d in docs if d["kind"] == "CronJob"]
        env = {e["name"]: e.get("value") for e in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert (env["AGENT_BOM_BACKUP_SSE"], "AGENT_BOM_BACKUP_KMS_KEY_ID" in env) == ("AES256", False)

    def test_set_typo_is_refused(self, helm_major):
        with pytest.raises(HelmError, match=r"(?i)additional propert.*enable\b"):
            render_chart(values_files=[RUNBOOK], set_values=["controlPlane.backup.enable=false"], helm_major=helm_major)

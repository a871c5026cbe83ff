"""`helm upgrade` paths: toggling the backup on and off, and upgrades from chart 0.1.0 with
`--reuse-values` (Helm renders with the *previous* chart's default values, which lack every block
added since: templates must not dereference them blindly) and `--reset-then-reuse-values` (the new
defaults plus the previous release's user values).

--reuse-values is modelled exactly: a copy of this chart whose values.yaml is 0.1.0's
(tests/chart/fixtures/chart-0.1.0-values.yaml), rendered with the old release's user values and
the upgrade's --set flags. One default grew since 0.1.0 and is set on such an upgrade: the backup's
memory limit (0.1.0's 1Gi gives a memory budget that holds dumps up to 2.7 TiB, not 5 TiB;
the backup says so at every start, docs/limits.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.helm_render import (
    CHART_DIR,
    CRONJOB_TEMPLATE,
    HELM_MAJORS,
    HelmError,
    container,
    render_chart,
    render_notes,
)

RUNBOOK = CHART_DIR / "ci" / "runbook-minimal-values.yaml"
ALL_FEATURES = CHART_DIR / "ci" / "all-features-values.yaml"
DISABLED = CHART_DIR / "ci" / "disabled-values.yaml"
FIXTURES = Path(__file__).parent / "fixtures"
OLD_DEFAULTS = FIXTURES / "chart-0.1.0-values.yaml"
OLD_ALL_FEATURES = FIXTURES / "chart-0.1.0-all-features-values.yaml"
#: what `helm upgrade --reuse-values` from 0.1.0 must set (the chart README says so)
RAISED_DEFAULTS = ["controlPlane.backup.resources.limits.memory=2560Mi"]
NEW_BLOCKS = [
    "controlPlane.backup.restore.enabled=true",
    "controlPlane.backup.restore.target.existingSecret=restore-target",
    "controlPlane.backup.restore.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="
    "arn:aws:iam::123456789012:role/agent-bom-restore",
    "controlPlane.backup.retentionDays=30",
    "controlPlane.backup.retention.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="
    "arn:aws:iam::123456789012:role/agent-bom-prune",
    "controlPlane.backup.networkPolicy.enabled=true",
    "controlPlane.backup.networkPolicy.database.cidrs[0]=10.0.0.0/16",
    "controlPlane.backup.networkPolicy.podIdentity.enabled=true",
    "controlPlane.backup.networkPolicy.dns.nodeLocal.enabled=true",
    "controlPlane.backup.prometheusRule.enabled=true",
    "controlPlane.backup.helmTest.enabled=true",
]


def _kinds(docs):
    return sorted((d["kind"], d["metadata"]["name"]) for d in docs)


@pytest.fixture(scope="module")
def chart_with_old_defaults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This chart as `helm upgrade --reuse-values` from 0.1.0 renders it."""
    chart = tmp_path_factory.mktemp("reuse-values") / "agent-bom"
    shutil.copytree(CHART_DIR, chart, ignore=lambda folder, _: ["tests", "ci"] if Path(folder) == CHART_DIR else [])
    shutil.copyfile(OLD_DEFAULTS, chart / "values.yaml")
    return chart


class TestReuseValuesFrom010:
    @pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
    @pytest.mark.parametrize("user_values", [RUNBOOK, OLD_ALL_FEATURES], ids=["runbook", "0.1.0-all-features"])
    def test_renders_what_the_new_defaults_render(self, chart_with_old_defaults, user_values, helm_major):
        reused = render_chart(values_files=[user_values], set_values=RAISED_DEFAULTS, chart=chart_with_old_defaults,
                              helm_major=helm_major)
        assert reused == render_chart(values_files=[user_values], helm_major=helm_major)

    def test_the_old_memory_limit_is_kept_unless_set(self, chart_with_old_defaults):
        """Why RAISED_DEFAULTS: without it the 0.1.0 limit stays (dumps up to 2.7 TiB, said at start)."""
        docs = render_chart(values_files=[RUNBOOK], chart=chart_with_old_defaults, show_only=[CRONJOB_TEMPLATE])
        assert container(docs[0])["resources"]["limits"]["memory"] == "1Gi"

    def test_turning_on_blocks_0_1_0_did_not_have_renders_what_the_new_defaults_render(self, chart_with_old_defaults):
        reused = render_chart(values_files=[RUNBOOK], set_values=NEW_BLOCKS + RAISED_DEFAULTS,
                              chart=chart_with_old_defaults)
        assert reused == render_chart(values_files=[RUNBOOK], set_values=NEW_BLOCKS)

    def test_the_new_blocks_did_render(self, chart_with_old_defaults):
        docs = render_chart(values_files=[RUNBOOK], set_values=NEW_BLOCKS, chart=chart_with_old_defaults)
        assert {"agent-bom-control-plane-restore", "agent-bom-control-plane-retention"} <= {d["metadata"]["name"] for d in docs}

    def test_disabling_removes_everything(self, chart_with_old_defaults):
        docs = render_chart(values_files=[OLD_ALL_FEATURES], set_values=["controlPlane.backup.enabled=false"],
                            chart=chart_with_old_defaults)
        assert docs == []

    def test_notes_render_with_the_old_defaults(self, chart_with_old_defaults):
        """NOTES.txt is a template too."""
        notes = render_notes(yaml.safe_load(RUNBOOK.read_text()), chart=chart_with_old_defaults)
        assert notes == render_notes(yaml.safe_load(RUNBOOK.read_text()))


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
def test_reset_then_reuse_values_from_0_1_0_renders(helm_major):
    """New defaults, then 0.1.0's whole values.yaml as the release's values (a copied defaults file)."""
    docs = render_chart(values_files=[OLD_DEFAULTS, RUNBOOK], helm_major=helm_major)
    assert ("CronJob", "agent-bom-control-plane-backup") in _kinds(docs)


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
class TestToggle:
    """`helm upgrade --reuse-values --set controlPlane.backup.enabled=true|false`."""

    def test_enabled_release_has_cronjob_and_service_account(self, helm_major):
        assert _kinds(render_chart(values_files=[RUNBOOK], helm_major=helm_major)) == [
            ("CronJob", "agent-bom-control-plane-backup"),
            ("ServiceAccount", "agent-bom-control-plane-backup"),
        ]

    def test_disabling_removes_every_object(self, helm_major):
        docs = render_chart(values_files=[ALL_FEATURES], set_values=["controlPlane.backup.enabled=false"],
                            helm_major=helm_major)
        assert docs == []

    def test_suspending_keeps_every_object(self, helm_major):
        enabled = render_chart(values_files=[ALL_FEATURES], helm_major=helm_major)
        suspended = render_chart(values_files=[ALL_FEATURES], set_values=["controlPlane.backup.suspend=true"],
                                 helm_major=helm_major)
        assert _kinds(suspended) == _kinds(enabled)

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

    def test_set_typo_is_refused(self, helm_major):
        with pytest.raises(HelmError, match=r"(?i)additional propert.*enable\b"):
            render_chart(values_files=[RUNBOOK], set_values=["controlPlane.backup.enable=false"], helm_major=helm_major)

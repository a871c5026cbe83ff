"""templates/_guard.tpl: installed under a release that already owns a Deployment, StatefulSet or
Service (upstream agent-bom's control plane: same chart name, so `helm upgrade --install agent-bom`
would swap its chart and delete its API, UI and gateway), the chart stops before Helm changes
anything. `lookup` answers only against a cluster, so the decision is rendered here with stubbed
lookup answers, through a copy of the chart with one extra template that feeds them to the same
named templates the guard uses; `helm template` (no cluster) renders as before."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm_render import CHART_DIR, CRONJOB_TEMPLATE, backup_values, own_role, refusal, render_chart

#: feeds .Values.guardStub.found (lookup-shaped answers per kind) to the guard's decision
STUB_TEMPLATE = """\
{{- with .Values.guardStub }}
{{- $owned := include "agent-bom.releaseGuard.owned" (dict "release" $.Release.Name "found" .found) | fromJsonArray }}
{{- with include "agent-bom.releaseGuard.message" (dict "release" $.Release.Name "namespace" $.Release.Namespace "owned" $owned) }}
{{- fail . }}
{{- end }}
{{- end }}
"""


@pytest.fixture(scope="module")
def stub_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("guard") / "agent-bom"
    shutil.copytree(CHART_DIR, chart, ignore=lambda folder, _: ["tests", "ci"] if Path(folder) == CHART_DIR else [])
    (chart / "templates" / "zz-guard-stub.yaml").write_text(STUB_TEMPLATE)
    return chart


def answer(*objects: tuple[str, str]) -> dict[str, Any]:
    """What lookup returns for a list: (name, owning release) per object."""
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"metadata": {"name": name, "annotations": {"meta.helm.sh/release-name": release,
                                                    "meta.helm.sh/release-namespace": "agent-bom"}}}
        for name, release in objects]}


def stubbed(**found: dict[str, Any]) -> dict[str, Any]:
    values = backup_values()
    values["guardStub"] = {"found": {"Deployment": {}, "StatefulSet": {}, "Service": {}, **found}}
    return values


def test_upstream_control_plane_under_the_release_name_is_refused(stub_chart: Path) -> None:
    values = stubbed(Deployment=answer(("agent-bom-api", "agent-bom"), ("agent-bom-ui", "agent-bom")),
                     Service=answer(("agent-bom-api", "agent-bom")))
    assert refusal(values, chart=stub_chart, name="agent-bom") == [
        "release agent-bom in namespace agent-bom belongs to another chart: it runs Deployment/agent-bom-api, "
        "Deployment/agent-bom-ui, Service/agent-bom-api, which this chart never renders, and installing this chart "
        "under that name would delete them. Install the backup as its own release: helm upgrade --install "
        "agent-bom-backup oci://ghcr.io/agent-bom/charts/agent-bom -n agent-bom -f values.yaml (docs/install.md)"]


def test_objects_of_another_release_in_the_namespace_do_not_stop_the_install(stub_chart: Path) -> None:
    values = stubbed(Deployment=answer(("agent-bom-api", "agent-bom")))
    assert render_chart(values, chart=stub_chart, name="agent-bom-backup", show_only=[CRONJOB_TEMPLATE])


def test_an_empty_namespace_does_not_stop_the_install(stub_chart: Path) -> None:
    assert render_chart(stubbed(), chart=stub_chart, name="agent-bom", show_only=[CRONJOB_TEMPLATE])


def test_without_a_cluster_lookup_finds_nothing_and_the_chart_renders() -> None:
    assert render_chart(backup_values(), name="agent-bom", show_only=[CRONJOB_TEMPLATE])


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Service"])
def test_the_chart_itself_renders_none_of_the_kinds_the_guard_looks_for(kind: str) -> None:
    """Otherwise the guard would refuse the chart's own upgrades."""
    values = backup_values(restore={"enabled": True, "target": {"existingSecret": "t"}, **own_role("agent-bom-restore")},
                           helmTest={"enabled": True},
                           networkPolicy={"enabled": True, "database": {"cidrs": ["10.0.0.0/16"]}},
                           prometheusRule={"enabled": True})
    assert [d for d in render_chart(values) if d["kind"] == kind] == []


def test_release_agent_bom_backup_keeps_the_runbooks_cronjob_name() -> None:
    (cronjob,) = render_chart(backup_values(), name="agent-bom-backup", show_only=[CRONJOB_TEMPLATE])
    assert cronjob["metadata"]["name"] == "agent-bom-control-plane-backup"

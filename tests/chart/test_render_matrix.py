"""Strict schema validation of every shipped values file for several Kubernetes minor
versions, rendered by Helm 3 and Helm 4 (render_chart validates every document)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm_render import CHART_DIR, HELM_MAJORS, KUBE_VERSIONS, REPO, HelmError, render_chart

VALUES_FILES = sorted((CHART_DIR / "ci").glob("*-values.yaml")) + sorted((REPO / "examples").glob("*.yaml"))
VALUES_IDS = [f"{p.parent.name}/{p.stem}" for p in VALUES_FILES]


def test_values_files_are_found():
    assert len(VALUES_FILES) >= 7


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS, ids=lambda v: f"k8s-{v}")
@pytest.mark.parametrize("values_file", VALUES_FILES, ids=VALUES_IDS)
class TestStrictSchemas:
    def test_renders_and_validates(self, values_file: Path, kube_version: str, helm_major: int):
        docs = render_chart(values_files=[values_file], kube_version=kube_version, helm_major=helm_major)
        assert all(d["metadata"]["namespace"] == "agent-bom" for d in docs)


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
def test_kubernetes_older_than_kube_version_is_refused(helm_major):
    with pytest.raises(HelmError, match=r"(?i)kubeVersion"):
        render_chart(values_files=[CHART_DIR / "ci" / "runbook-minimal-values.yaml"], kube_version="1.26.0",
                     helm_major=helm_major)


@pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
def test_helm_majors_render_identically(helm_major):
    all_features = [CHART_DIR / "ci" / "all-features-values.yaml"]
    assert render_chart(values_files=all_features, helm_major=helm_major) == render_chart(values_files=all_features)

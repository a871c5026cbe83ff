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


class TestEveryObject:
    """ci/all-features-values.yaml turns every template on and sets commonLabels/commonAnnotations."""

    DOCS = None

    @classmethod
    def _docs(cls):
        if cls.DOCS is None:
            cls.DOCS = render_chart(values_files=[CHART_DIR / "ci" / "all-features-values.yaml"])
        return cls.DOCS

    def test_every_template_renders(self):
        names = ("backup", "restore", "restore-drill", "retention")
        assert sorted((d["kind"], d["metadata"]["name"]) for d in self._docs()) == sorted(
            [("CronJob", f"agent-bom-control-plane-{n}") for n in names]
            + [("ServiceAccount", f"agent-bom-control-plane-{n}") for n in names]
            + [("NetworkPolicy", "agent-bom-control-plane-backup"), ("PrometheusRule", "agent-bom-control-plane-backup"),
               ("Pod", "agent-bom-control-plane-backup-test")])

    def test_common_labels_on_every_object(self):
        assert [d["metadata"]["name"] for d in self._docs() if d["metadata"]["labels"].get("team") != "platform"] == []

    def test_common_annotations_on_every_object(self):
        missing = [d["metadata"]["name"] for d in self._docs()
                   if d["metadata"].get("annotations", {}).get("owner.example.com/team") != "platform"]
        assert missing == []

    def test_global_pull_secrets_on_every_pod(self):
        pods = [d["spec"]["jobTemplate"]["spec"]["template"]["spec"] if d["kind"] == "CronJob" else d["spec"]
                for d in self._docs() if d["kind"] in ("CronJob", "Pod")]
        assert [p["imagePullSecrets"] for p in pods] == [[{"name": "mirror-pull"}, {"name": "regcred"}]] * len(pods)

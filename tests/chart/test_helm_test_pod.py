"""templates/tests/controlplane-backup-test-pod.yaml: `helm test` runs the preflight
(database connect, bucket reachability) with the backup Job's identity and environment."""

from __future__ import annotations

from typing import Any

from tests.chart.helm_render import CRONJOB_TEMPLATE, HELM_TEST_TEMPLATE, backup_values, container, pod_spec, render_chart

VALUES = backup_values(
    helmTest={"enabled": True},
    destination={"endpointUrl": "https://minio.example:9000", "caBundle": {"secretName": "s3-ca"},
                 "staticCredentials": {"enabled": True, "existingSecret": "s3-creds"}},
)


def _docs() -> tuple[dict[str, Any], dict[str, Any]]:
    (pod,) = render_chart(VALUES, show_only=[HELM_TEST_TEMPLATE])
    (cronjob,) = render_chart(VALUES, show_only=[CRONJOB_TEMPLATE])
    return pod, cronjob


class TestHelmTestPod:
    TEMPLATE = HELM_TEST_TEMPLATE

    def test_off_by_default(self):
        assert render_chart(backup_values(), show_only=[self.TEMPLATE]) == []

    def test_runs_the_cli(self):
        pod, _ = _docs()
        assert container(pod)["command"] == ["agent-bom-backup"]

    def test_is_deleted_before_the_next_test_and_after_success(self):
        pod, _ = _docs()
        assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"

    def test_never_checks_backup_age(self):
        pod, _ = _docs()
        assert "check" not in container(pod)["args"]

    def test_component_label(self):
        pod, _ = _docs()
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "control-plane-backup-test"

    def test_uses_the_backup_service_account(self):
        pod, cronjob = _docs()
        assert pod_spec(pod)["serviceAccountName"] == pod_spec(cronjob)["serviceAccountName"]

    def test_uses_the_backup_environment(self):
        pod, cronjob = _docs()
        assert container(pod)["env"] == container(cronjob)["env"]

    def test_uses_the_backup_volumes(self):
        pod, cronjob = _docs()
        assert pod_spec(pod)["volumes"] == pod_spec(cronjob)["volumes"]

    def test_does_not_restart(self):
        pod, _ = _docs()
        assert pod_spec(pod)["restartPolicy"] == "Never"

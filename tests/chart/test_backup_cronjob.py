"""templates/controlplane-backup-cronjob.yaml: the runbook's backup CronJob."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import (
    CRONJOB_TEMPLATE,
    RUNBOOK_MINIMAL_VALUES,
    backup_values,
    container,
    env_map,
    mounts_by_name,
    pod_spec,
    render_chart,
    volumes_by_name,
)


def _cronjob(**overrides: Any) -> dict[str, Any]:
    (doc,) = render_chart(backup_values(**overrides), show_only=[CRONJOB_TEMPLATE])
    return doc


class TestRunbookMinimalValues:
    """The runbook's minimal values render as they are (release agent-bom, namespace agent-bom)."""

    TEMPLATE = CRONJOB_TEMPLATE

    def test_render_exactly_one_cronjob(self):
        docs = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        assert [d["kind"] for d in docs] == ["CronJob"]

    def test_cronjob_name_is_the_runbooks(self):
        (doc,) = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        assert doc["metadata"]["name"] == "agent-bom-control-plane-backup"

    def test_cronjob_is_in_the_release_namespace(self):
        (doc,) = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        assert doc["metadata"]["namespace"] == "agent-bom"

    def test_api_version_is_batch_v1(self):
        (doc,) = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        assert doc["apiVersion"] == "batch/v1"

    def test_schedule_defaults_to_runbook_value(self):
        values = backup_values()
        del values["controlPlane"]["backup"]["schedule"]
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert doc["spec"]["schedule"] == "0 3 * * *"

    @pytest.mark.parametrize(
        "path",
        [
            ("metadata",),
            ("spec", "jobTemplate", "metadata"),
            ("spec", "jobTemplate", "spec", "template", "metadata"),
        ],
        ids=["cronjob", "job-template", "pod-template"],
    )
    def test_component_label_is_control_plane_backup(self, path):
        (doc,) = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        node = doc
        for key in path:
            node = node[key]
        assert node["labels"]["app.kubernetes.io/component"] == "control-plane-backup"

    @pytest.mark.parametrize(
        ("label", "expected"),
        [
            ("app.kubernetes.io/name", "agent-bom"),
            ("app.kubernetes.io/instance", "agent-bom"),
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/version", "0.1.0"),
            ("app.kubernetes.io/part-of", "agent-bom"),
            ("helm.sh/chart", "agent-bom-0.1.0"),
        ],
        ids=lambda v: v.replace("/", "-") if isinstance(v, str) else v,
    )
    def test_standard_labels(self, label, expected):
        (doc,) = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        assert doc["metadata"]["labels"][label] == expected

    def test_kms_key_from_runbook_reaches_the_job(self):
        (doc,) = render_chart(RUNBOOK_MINIMAL_VALUES, show_only=[self.TEMPLATE])
        assert env_map(doc)["AGENT_BOM_BACKUP_KMS_KEY_ID"] == "alias/agent-bom-backups"


class TestDisabled:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_default_values_render_nothing(self):
        assert render_chart() == []

    def test_disabled_with_full_destination_renders_nothing(self):
        assert render_chart(backup_values(enabled=False)) == []


class TestCronJobBehaviour:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_concurrency_policy_defaults_to_forbid(self):
        assert _cronjob()["spec"]["concurrencyPolicy"] == "Forbid"

    @pytest.mark.parametrize(
        ("overrides", "path", "expected"),
        [
            ({"schedule": "@daily"}, ("spec", "schedule"), "@daily"),
            ({"suspend": True}, ("spec", "suspend"), True),
            ({"concurrencyPolicy": "Replace"}, ("spec", "concurrencyPolicy"), "Replace"),
            ({"startingDeadlineSeconds": 600}, ("spec", "startingDeadlineSeconds"), 600),
            ({"successfulJobsHistoryLimit": 0}, ("spec", "successfulJobsHistoryLimit"), 0),
            ({"failedJobsHistoryLimit": 5}, ("spec", "failedJobsHistoryLimit"), 5),
            ({"timeZone": "Europe/Berlin"}, ("spec", "timeZone"), "Europe/Berlin"),
            ({"backoffLimit": 0}, ("spec", "jobTemplate", "spec", "backoffLimit"), 0),
            ({"activeDeadlineSeconds": 7200}, ("spec", "jobTemplate", "spec", "activeDeadlineSeconds"), 7200),
            ({"ttlSecondsAfterFinished": 0}, ("spec", "jobTemplate", "spec", "ttlSecondsAfterFinished"), 0),
            ({"ttlSecondsAfterFinished": 86400}, ("spec", "jobTemplate", "spec", "ttlSecondsAfterFinished"), 86400),
        ],
        ids=[
            "schedule-macro", "suspend", "concurrency-replace", "starting-deadline", "success-history-zero",
            "failed-history", "time-zone", "backoff-zero", "active-deadline", "ttl-zero", "ttl-day",
        ],
    )
    def test_value_reaches_spec(self, overrides, path, expected):
        node = _cronjob(**overrides)
        for key in path:
            node = node[key]
        assert node == expected

    @pytest.mark.parametrize(
        ("path", "key"),
        [
            (("spec",), "timeZone"),
            (("spec", "jobTemplate", "spec"), "ttlSecondsAfterFinished"),
        ],
        ids=["time-zone", "ttl"],
    )
    def test_optional_field_absent_by_default(self, path, key):
        node = _cronjob()
        for part in path:
            node = node[part]
        assert key not in node

    @pytest.mark.parametrize(
        ("overrides", "path"),
        [
            ({"activeDeadlineSeconds": 1000000}, ("spec", "jobTemplate", "spec", "activeDeadlineSeconds")),
            ({"startingDeadlineSeconds": 1000000}, ("spec", "startingDeadlineSeconds")),
            ({"ttlSecondsAfterFinished": 2592000}, ("spec", "jobTemplate", "spec", "ttlSecondsAfterFinished")),
        ],
        ids=["active-deadline", "starting-deadline", "ttl-30-days"],
    )
    def test_large_integers_render_as_integers(self, overrides, path):
        """Helm reads values numbers as floats: 1000000 must not render as 1e+06."""
        node = _cronjob(**overrides)
        for key in path:
            node = node[key]
        assert node == next(iter(overrides.values()))

    def test_pods_never_restart_in_place(self):
        assert pod_spec(_cronjob())["restartPolicy"] == "Never"


class TestContainer:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_command_is_the_cli_without_shell(self):
        assert container(_cronjob())["command"] == ["agent-bom-backup"]

    def test_args_run_backup(self):
        assert container(_cronjob())["args"] == ["backup"]

    def test_image_defaults_to_app_version(self):
        assert container(_cronjob())["image"] == "ghcr.io/agent-bom/agent-bom-backup:0.1.0"

    @pytest.mark.parametrize(
        ("image", "expected"),
        [
            ({"tag": "1.2.3"}, "ghcr.io/agent-bom/agent-bom-backup:1.2.3"),
            ({"repository": "registry.example/backup"}, "registry.example/backup:0.1.0"),
            ({"tag": "1.2.3", "digest": "sha256:" + "a" * 64}, "ghcr.io/agent-bom/agent-bom-backup@sha256:" + "a" * 64),
        ],
        ids=["tag", "repository", "digest-wins-over-tag"],
    )
    def test_image_reference(self, image, expected):
        assert container(_cronjob(image=image))["image"] == expected

    def test_pull_policy_follows_value(self):
        assert container(_cronjob(image={"pullPolicy": "Always"}))["imagePullPolicy"] == "Always"

    def test_pull_secrets_become_references(self):
        spec = pod_spec(_cronjob(image={"pullSecrets": ["regcred"]}))
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]

    def test_no_pull_secrets_by_default(self):
        assert "imagePullSecrets" not in pod_spec(_cronjob())

    def test_resources_are_set_by_default(self):
        resources = container(_cronjob())["resources"]
        assert set(resources) == {"requests", "limits"}

    def test_scratch_is_an_emptydir_at_tmp(self):
        assert mounts_by_name(_cronjob())["tmp"]["mountPath"] == "/tmp"

    def test_scratch_size_limit_defaults(self):
        assert volumes_by_name(_cronjob())["tmp"]["emptyDir"] == {"sizeLimit": "1Gi"}

    def test_scratch_size_limit_follows_value(self):
        doc = _cronjob(scratch={"sizeLimit": "5Gi"})
        assert volumes_by_name(doc)["tmp"]["emptyDir"]["sizeLimit"] == "5Gi"

    def test_only_tmp_is_mounted_by_default(self):
        assert list(mounts_by_name(_cronjob())) == ["tmp"]

    @pytest.mark.parametrize("name", ["HOME", "TMPDIR"])
    def test_home_and_tmpdir_point_at_scratch(self, name):
        assert env_map(_cronjob())[name] == "/tmp"


class TestDatabaseUrl:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_url_comes_from_the_documented_default_secret(self):
        assert env_map(_cronjob())["AGENT_BOM_POSTGRES_URL"] == {
            "secretKeyRef": {"name": "agent-bom-postgres", "key": "AGENT_BOM_POSTGRES_URL"}
        }

    def test_url_secret_name_and_key_follow_values(self):
        doc = _cronjob(database={"existingSecret": "pg-url", "existingSecretKey": "url"})
        assert env_map(doc)["AGENT_BOM_POSTGRES_URL"] == {"secretKeyRef": {"name": "pg-url", "key": "url"}}

    def test_no_env_var_holds_an_inline_url(self):
        values = [e.get("value", "") for e in container(_cronjob())["env"]]
        assert not [v for v in values if "postgres" in v and "://" in v]

    def test_postgres_ca_bundle_from_secret_sets_pgsslrootcert(self):
        doc = _cronjob(database={"caBundle": {"secretName": "pg-ca"}})
        assert env_map(doc)["PGSSLROOTCERT"] == "/etc/agent-bom/postgres-ca/ca.crt"

    def test_postgres_ca_bundle_secret_is_mounted_read_only(self):
        doc = _cronjob(database={"caBundle": {"secretName": "pg-ca"}})
        assert mounts_by_name(doc)["postgres-ca"]["readOnly"] is True

    def test_postgres_ca_bundle_secret_key_maps_to_ca_crt(self):
        doc = _cronjob(database={"caBundle": {"secretName": "pg-ca", "key": "root.pem"}})
        assert volumes_by_name(doc)["postgres-ca"]["secret"]["items"] == [{"key": "root.pem", "path": "ca.crt"}]

    def test_postgres_ca_bundle_from_configmap(self):
        doc = _cronjob(database={"caBundle": {"configMapName": "pg-ca"}})
        assert volumes_by_name(doc)["postgres-ca"]["configMap"]["name"] == "pg-ca"

    @pytest.mark.parametrize("name", ["PGSSLROOTCERT", "PGSSLMODE"])
    def test_libpq_tls_variables_absent_by_default(self, name):
        assert name not in env_map(_cronjob())

    def test_ssl_mode_sets_pgsslmode(self):
        assert env_map(_cronjob(database={"sslMode": "verify-full"}))["PGSSLMODE"] == "verify-full"


class TestDestination:
    TEMPLATE = CRONJOB_TEMPLATE

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("AGENT_BOM_BACKUP_BUCKET", "agent-bom-prod-backups"),
            ("AGENT_BOM_BACKUP_PREFIX", "agent-bom/postgres"),
            ("AGENT_BOM_BACKUP_REGION", "<your-backup-bucket-region>"),
            ("AWS_REGION", "<your-backup-bucket-region>"),
            ("AWS_DEFAULT_REGION", "<your-backup-bucket-region>"),
            ("AGENT_BOM_BACKUP_VERIFY_REGION", "true"),
            ("AGENT_BOM_BACKUP_PATH_STYLE", "false"),
            ("AGENT_BOM_BACKUP_CHECKSUM_MODE", "auto"),
            ("AGENT_BOM_BACKUP_COMPRESSION", "auto"),
            ("AGENT_BOM_BACKUP_TENANT_COLUMN", "team_id"),
            ("AGENT_BOM_BACKUP_LOG_FORMAT", "json"),
            ("AGENT_BOM_BACKUP_LOG_LEVEL", "info"),
        ],
        ids=lambda v: v,
    )
    def test_env_from_runbook_values(self, name, expected):
        assert env_map(_cronjob())[name] == expected

    @pytest.mark.parametrize(
        ("encryption", "expected_sse"),
        [
            ({"enabled": True, "mode": "aws:kms", "kmsKeyId": "alias/k"}, "aws:kms"),
            ({"enabled": True, "mode": "aws:kms", "kmsKeyId": ""}, "aws:kms"),
            ({"enabled": True, "mode": "AES256", "kmsKeyId": ""}, "AES256"),
            ({"enabled": False, "mode": "aws:kms", "kmsKeyId": ""}, "none"),
        ],
        ids=["kms-with-key", "kms-bucket-default-key", "sse-s3", "disabled"],
    )
    def test_encryption_maps_to_sse(self, encryption, expected_sse):
        doc = _cronjob(destination={"encryption": encryption})
        assert env_map(doc)["AGENT_BOM_BACKUP_SSE"] == expected_sse

    @pytest.mark.parametrize(
        "encryption",
        [
            {"enabled": True, "mode": "aws:kms", "kmsKeyId": ""},
            {"enabled": True, "mode": "AES256", "kmsKeyId": ""},
            {"enabled": False, "mode": "aws:kms", "kmsKeyId": ""},
        ],
        ids=["kms-bucket-default-key", "sse-s3", "disabled"],
    )
    def test_kms_key_id_absent_without_a_key(self, encryption):
        doc = _cronjob(destination={"encryption": encryption})
        assert "AGENT_BOM_BACKUP_KMS_KEY_ID" not in env_map(doc)

    @pytest.mark.parametrize(
        "name",
        [
            "AGENT_BOM_BACKUP_ENDPOINT_URL", "AGENT_BOM_BACKUP_CA_BUNDLE", "AGENT_BOM_BACKUP_STORAGE_CLASS",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
        ],
    )
    def test_optional_storage_env_absent_by_default(self, name):
        assert name not in env_map(_cronjob())

    @pytest.mark.parametrize(
        ("destination", "name", "expected"),
        [
            ({"endpointUrl": "https://minio.example:9000"}, "AGENT_BOM_BACKUP_ENDPOINT_URL", "https://minio.example:9000"),
            ({"pathStyle": True}, "AGENT_BOM_BACKUP_PATH_STYLE", "true"),
            ({"checksumMode": "when_required"}, "AGENT_BOM_BACKUP_CHECKSUM_MODE", "when_required"),
            ({"verifyRegion": False}, "AGENT_BOM_BACKUP_VERIFY_REGION", "false"),
            ({"storageClass": "STANDARD_IA"}, "AGENT_BOM_BACKUP_STORAGE_CLASS", "STANDARD_IA"),
            ({"prefix": ""}, "AGENT_BOM_BACKUP_PREFIX", ""),
            ({"bucketRegion": "eu-west-1"}, "AWS_REGION", "eu-west-1"),
        ],
        ids=["endpoint", "path-style", "checksum", "no-verify-region", "storage-class", "empty-prefix", "region"],
    )
    def test_destination_value_reaches_env(self, destination, name, expected):
        assert env_map(_cronjob(destination=destination))[name] == expected

    def test_object_store_ca_bundle_env_points_at_mounted_file(self):
        doc = _cronjob(destination={"caBundle": {"secretName": "s3-ca"}})
        assert env_map(doc)["AGENT_BOM_BACKUP_CA_BUNDLE"] == "/etc/agent-bom/object-store-ca/ca.crt"

    def test_object_store_ca_bundle_is_mounted_read_only(self):
        doc = _cronjob(destination={"caBundle": {"configMapName": "s3-ca"}})
        assert mounts_by_name(doc)["object-store-ca"] == {
            "name": "object-store-ca", "mountPath": "/etc/agent-bom/object-store-ca", "readOnly": True,
        }

    def test_object_store_ca_bundle_configmap_volume(self):
        doc = _cronjob(destination={"caBundle": {"configMapName": "s3-ca", "key": "bundle.pem"}})
        assert volumes_by_name(doc)["object-store-ca"]["configMap"] == {
            "name": "s3-ca", "defaultMode": 0o444, "items": [{"key": "bundle.pem", "path": "ca.crt"}],
        }


class TestCredentials:
    TEMPLATE = CRONJOB_TEMPLATE

    @pytest.mark.parametrize(
        ("name", "key"),
        [("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")],
        ids=["access-key-id", "secret-access-key"],
    )
    def test_static_credentials_come_from_the_secret(self, name, key):
        doc = _cronjob(destination={"staticCredentials": {"enabled": True, "existingSecret": "s3-creds"}})
        assert env_map(doc)[name] == {"secretKeyRef": {"name": "s3-creds", "key": key}}

    def test_static_credentials_keys_follow_values(self):
        doc = _cronjob(destination={"staticCredentials": {
            "enabled": True, "existingSecret": "s3-creds", "accessKeyIdKey": "id", "secretAccessKeyKey": "secret",
        }})
        assert env_map(doc)["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3-creds", "key": "secret"}}

    def test_session_token_only_when_its_key_is_set(self):
        doc = _cronjob(destination={"staticCredentials": {
            "enabled": True, "existingSecret": "s3-creds", "sessionTokenKey": "token",
        }})
        assert env_map(doc)["AWS_SESSION_TOKEN"] == {"secretKeyRef": {"name": "s3-creds", "key": "token"}}

    def test_web_identity_sets_role_arn(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/agent-bom-backup"})
        assert env_map(doc)["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/agent-bom-backup"

    def test_web_identity_token_file_is_the_projected_token(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/r"})
        assert env_map(doc)["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/agent-bom/aws-token/token"

    def test_web_identity_projects_a_token_for_sts(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/r"})
        assert volumes_by_name(doc)["aws-token"]["projected"]["sources"] == [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}}
        ]

    def test_web_identity_token_is_mounted_read_only(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/r"})
        assert mounts_by_name(doc)["aws-token"]["readOnly"] is True

    def test_api_token_not_automounted_by_default(self):
        assert pod_spec(_cronjob())["automountServiceAccountToken"] is False

    def test_api_token_automounted_when_asked(self):
        doc = _cronjob(serviceAccount={"automountServiceAccountToken": True})
        assert pod_spec(doc)["automountServiceAccountToken"] is True

    def test_pod_uses_the_charts_service_account(self):
        assert pod_spec(_cronjob())["serviceAccountName"] == "agent-bom-control-plane-backup"

    def test_pod_uses_an_existing_service_account(self):
        doc = _cronjob(serviceAccount={"create": False, "name": "platform-backup", "annotations": None})
        assert pod_spec(doc)["serviceAccountName"] == "platform-backup"


class TestTuning:
    TEMPLATE = CRONJOB_TEMPLATE

    @pytest.mark.parametrize(
        ("overrides", "name", "expected"),
        [
            ({"dump": {"compression": "zstd:3"}}, "AGENT_BOM_BACKUP_COMPRESSION", "zstd:3"),
            ({"dump": {"compressionFallback": "gzip:1"}}, "AGENT_BOM_BACKUP_COMPRESSION_FALLBACK", "gzip:1"),
            ({"dump": {"tenantColumn": "tenant_id"}}, "AGENT_BOM_BACKUP_TENANT_COLUMN", "tenant_id"),
            ({"dump": {"lockWaitTimeout": 0}}, "AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT", "0"),
            ({"dump": {"lockWaitTimeout": 120}}, "AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT", "120"),
            ({"dump": {"enableRowSecurity": True}}, "AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY", "true"),
            ({"upload": {"partSize": "64MiB"}}, "AGENT_BOM_BACKUP_PART_SIZE", "64MiB"),
            ({"upload": {"concurrency": 8}}, "AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY", "8"),
            ({"dump": {"lockWaitTimeout": 1000000}}, "AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT", "1000000"),
            ({"metricsFile": "/tmp/backup.prom"}, "AGENT_BOM_BACKUP_METRICS_FILE", "/tmp/backup.prom"),
            ({"logging": {"format": "text", "level": "debug"}}, "AGENT_BOM_BACKUP_LOG_LEVEL", "debug"),
        ],
        ids=[
            "compression", "compression-fallback", "tenant-column", "lock-wait-zero", "lock-wait",
            "row-security", "part-size", "concurrency", "lock-wait-large", "metrics-file", "log-level",
        ],
    )
    def test_value_reaches_env(self, overrides, name, expected):
        assert env_map(_cronjob(**overrides))[name] == expected

    @pytest.mark.parametrize(
        "name",
        [
            "AGENT_BOM_BACKUP_COMPRESSION_FALLBACK", "AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT",
            "AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY", "AGENT_BOM_BACKUP_PART_SIZE",
            "AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY", "AGENT_BOM_BACKUP_METRICS_FILE",
        ],
    )
    def test_cli_default_applies_when_unset(self, name):
        assert name not in env_map(_cronjob())

    def test_extra_env_is_appended(self):
        doc = _cronjob(extraEnv=[{"name": "FOO", "value": "bar"}])
        assert container(doc)["env"][-1] == {"name": "FOO", "value": "bar"}

    def test_extra_env_from(self):
        doc = _cronjob(extraEnvFrom=[{"configMapRef": {"name": "backup-settings"}}])
        assert container(doc)["envFrom"] == [{"configMapRef": {"name": "backup-settings"}}]

    def test_no_env_from_by_default(self):
        assert "envFrom" not in container(_cronjob())

    def test_extra_volume_and_mount(self):
        doc = _cronjob(
            extraVolumes=[{"name": "metrics", "emptyDir": {}}],
            extraVolumeMounts=[{"name": "metrics", "mountPath": "/metrics"}],
        )
        assert mounts_by_name(doc)["metrics"]["mountPath"] == "/metrics"


class TestPodPlacement:
    TEMPLATE = CRONJOB_TEMPLATE

    @pytest.mark.parametrize(
        ("overrides", "key", "expected"),
        [
            ({"nodeSelector": {"pool": "system"}}, "nodeSelector", {"pool": "system"}),
            ({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}, "tolerations",
             [{"key": "dedicated", "operator": "Exists"}]),
            ({"affinity": {"nodeAffinity": {}}}, "affinity", {"nodeAffinity": {}}),
            ({"priorityClassName": "backup-critical"}, "priorityClassName", "backup-critical"),
        ],
        ids=["node-selector", "tolerations", "affinity", "priority-class"],
    )
    def test_value_reaches_pod_spec(self, overrides, key, expected):
        assert pod_spec(_cronjob(**overrides))[key] == expected

    @pytest.mark.parametrize("key", ["nodeSelector", "tolerations", "affinity", "priorityClassName"])
    def test_absent_by_default(self, key):
        assert key not in pod_spec(_cronjob())

    def test_pod_annotations(self):
        doc = _cronjob(podAnnotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"})
        metadata = doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
        assert metadata["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}

    def test_pod_labels_are_added(self):
        doc = _cronjob(podLabels={"team": "platform"})
        assert doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["team"] == "platform"

    def test_pod_labels_cannot_override_the_component(self):
        doc = _cronjob(podLabels={"app.kubernetes.io/component": "something-else"})
        labels = doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "control-plane-backup"

    def test_common_labels_reach_the_cronjob(self):
        values = backup_values()
        values["commonLabels"] = {"cost-center": "platform"}
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert doc["metadata"]["labels"]["cost-center"] == "platform"


class TestNames:
    TEMPLATE = CRONJOB_TEMPLATE

    @pytest.mark.parametrize(
        ("release", "expected"),
        [
            ("agent-bom", "agent-bom-control-plane-backup"),
            ("prod", "prod-agent-bom-control-plane-backup"),
            ("agent-bom-prod", "agent-bom-prod-control-plane-backup"),
        ],
        ids=["runbook", "short", "contains-chart-name"],
    )
    def test_cronjob_name_for_release(self, release, expected):
        (doc,) = render_chart(backup_values(), show_only=[self.TEMPLATE], name=release)
        assert doc["metadata"]["name"] == expected

    @pytest.mark.parametrize(
        "release",
        ["a" * 53, "agent-bom-" + "x" * 43, "production-eu-west-1-agent-bom-control-plane"],
        ids=["53-chars", "prefixed-53-chars", "realistic-long"],
    )
    def test_long_release_names_keep_cronjob_name_within_52(self, release):
        (doc,) = render_chart(backup_values(), show_only=[self.TEMPLATE], name=release)
        assert len(doc["metadata"]["name"]) <= 52

    def test_long_release_names_keep_the_suffix(self):
        (doc,) = render_chart(backup_values(), show_only=[self.TEMPLATE], name="a" * 53)
        assert doc["metadata"]["name"].endswith("-control-plane-backup")

    def test_fullname_override(self):
        values = backup_values()
        values["fullnameOverride"] = "cp"
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert doc["metadata"]["name"] == "cp-control-plane-backup"

    def test_namespace_follows_the_release(self):
        (doc,) = render_chart(backup_values(), show_only=[self.TEMPLATE], namespace="platform")
        assert doc["metadata"]["namespace"] == "platform"

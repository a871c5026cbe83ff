"""templates/controlplane-backup-cronjob.yaml: the runbook's backup CronJob."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import CRONJOB_TEMPLATE, backup_values, container, env_cases, env_map, mounts_by_name
from tests.chart.helm_render import pod_spec, render_chart, volumes_by_name


def _cronjob(**overrides: Any) -> dict[str, Any]:
    (doc,) = render_chart(backup_values(**overrides), show_only=[CRONJOB_TEMPLATE])
    return doc


class TestRunbookValues:
    """The runbook's minimal values, placeholders filled in (release agent-bom, namespace agent-bom).
    Name, namespace, kind and the Jobs' component label are the helm-unittest suite's contract."""

    TEMPLATE = CRONJOB_TEMPLATE

    def test_schedule_defaults_to_runbook_value(self):
        values = backup_values()
        del values["controlPlane"]["backup"]["schedule"]
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert doc["spec"]["schedule"] == "0 3 * * *"

    @pytest.mark.parametrize(
        "path",
        [("metadata",), ("spec", "jobTemplate", "spec", "template", "metadata")],
        ids=["cronjob", "pod-template"],
    )
    def test_component_label_is_control_plane_backup(self, path):
        node = _cronjob()
        for key in path:
            node = node[key]
        assert node["labels"]["app.kubernetes.io/component"] == "control-plane-backup"

    @pytest.mark.parametrize(
        ("label", "expected"),
        [
            ("app.kubernetes.io/name", "agent-bom"),
            ("app.kubernetes.io/instance", "agent-bom"),
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/version", "0.2.0"),
            ("app.kubernetes.io/part-of", "agent-bom"),
            ("helm.sh/chart", "agent-bom-0.2.0"),
        ],
        ids=lambda v: v.replace("/", "-") if isinstance(v, str) else v,
    )
    def test_standard_labels(self, label, expected):
        assert _cronjob()["metadata"]["labels"][label] == expected

    def test_kms_key_from_runbook_reaches_the_job(self):
        assert env_map(_cronjob())["AGENT_BOM_BACKUP_KMS_KEY_ID"] == "alias/agent-bom-backups"

    def test_no_annotations_without_common_annotations(self):
        assert "annotations" not in _cronjob()["metadata"]

    def test_common_annotations_reach_the_cronjob(self):
        values = backup_values()
        values["commonAnnotations"] = {"owner.example.com/team": "platform"}
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert doc["metadata"]["annotations"] == {"owner.example.com/team": "platform"}


class TestDisabled:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_default_values_render_nothing(self):
        assert render_chart() == []


class TestJobFailures:
    """Configuration errors fail the Job at once; transient failures are retried; a stopped pod
    has time to abort its multipart upload."""

    TEMPLATE = CRONJOB_TEMPLATE

    def _rules(self) -> list[dict[str, Any]]:
        return _cronjob()["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]

    def test_fail_job_rule_is_for_the_backup_container(self):
        assert self._rules()[0]["onExitCodes"]["containerName"] == "backup"

    @pytest.mark.parametrize("code", [4, 5, 6, 1, 143], ids=["preflight", "dump", "storage", "internal", "sigterm"])
    def test_transient_exit_codes_are_retried(self, code):
        assert code not in self._rules()[0]["onExitCodes"]["values"]

    def test_fail_job_codes_exist_in_the_cli(self):
        from agent_bom_backup.errors import ExitCode

        assert {ExitCode(c).name for c in self._rules()[0]["onExitCodes"]["values"]} == {
            "USAGE", "CONFIG", "VERIFY", "REFUSED"}

    def test_evicted_pods_do_not_count_against_backoff(self):
        assert self._rules()[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}

    def test_grace_period_defaults_to_two_minutes(self):
        assert pod_spec(_cronjob())["terminationGracePeriodSeconds"] == 120

    def test_grace_period_follows_value(self):
        assert pod_spec(_cronjob(terminationGracePeriodSeconds=600))["terminationGracePeriodSeconds"] == 600


class TestCronJobBehaviour:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_concurrency_policy_defaults_to_forbid(self):
        assert _cronjob()["spec"]["concurrencyPolicy"] == "Forbid"

    #: one render for the independent settings (each parameter below checks one of them)
    SPEC_VALUES = {
        "schedule": "@daily", "suspend": True, "concurrencyPolicy": "Replace", "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 5, "timeZone": "Europe/Berlin", "backoffLimit": 0,
        "activeDeadlineSeconds": 7200, "ttlSecondsAfterFinished": 86400,
    }

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (("spec", "schedule"), "@daily"),
            (("spec", "suspend"), True),
            (("spec", "concurrencyPolicy"), "Replace"),
            (("spec", "startingDeadlineSeconds"), 600),
            (("spec", "successfulJobsHistoryLimit"), 0),
            (("spec", "failedJobsHistoryLimit"), 5),
            (("spec", "timeZone"), "Europe/Berlin"),
            (("spec", "jobTemplate", "spec", "backoffLimit"), 0),
            (("spec", "jobTemplate", "spec", "activeDeadlineSeconds"), 7200),
            (("spec", "jobTemplate", "spec", "ttlSecondsAfterFinished"), 86400),
        ],
        ids=[
            "schedule-macro", "suspend", "concurrency-replace", "starting-deadline", "success-history-zero",
            "failed-history", "time-zone", "backoff-zero", "active-deadline", "ttl-day",
        ],
    )
    def test_value_reaches_spec(self, path, expected):
        node = _cronjob(**self.SPEC_VALUES)
        for key in path:
            node = node[key]
        assert node == expected

    def test_ttl_zero_is_kept(self):
        assert _cronjob(ttlSecondsAfterFinished=0)["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] == 0

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

    def test_image_defaults_to_app_version(self):
        assert container(_cronjob())["image"] == "ghcr.io/agent-bom/agent-bom-backup:0.2.0"

    @pytest.mark.parametrize(
        ("image", "expected"),
        [
            ({"tag": "1.2.3"}, "ghcr.io/agent-bom/agent-bom-backup:1.2.3"),
            ({"repository": "registry.example/backup"}, "registry.example/backup:0.2.0"),
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

    @pytest.mark.parametrize(
        "global_secrets",
        [["mirror"], [{"name": "mirror"}]],
        ids=["names", "objects"],
    )
    def test_global_pull_secrets_come_first(self, global_secrets):
        values = backup_values(image={"pullSecrets": ["regcred", "mirror"]})
        values["global"] = {"imagePullSecrets": global_secrets}
        (doc,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
        assert pod_spec(doc)["imagePullSecrets"] == [{"name": "mirror"}, {"name": "regcred"}]

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

    @env_cases(
        ("AGENT_BOM_BACKUP_BUCKET", "agent-bom-prod-backups"),
        ("AGENT_BOM_BACKUP_PREFIX", "agent-bom/postgres"),
        ("AGENT_BOM_BACKUP_REGION", "us-east-1"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AGENT_BOM_BACKUP_VERIFY_REGION", "true"),
        ("AGENT_BOM_BACKUP_PATH_STYLE", "false"),
        ("AGENT_BOM_BACKUP_CHECKSUM_MODE", "auto"),
        ("AGENT_BOM_BACKUP_COMPRESSION", "auto"),
        ("AGENT_BOM_BACKUP_TENANT_COLUMN", "team_id"),
        ("AGENT_BOM_BACKUP_LOG_FORMAT", "json"),
        ("AGENT_BOM_BACKUP_LOG_LEVEL", "info"),
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

    DESTINATION = {"endpointUrl": "https://minio.example:9000", "pathStyle": True, "checksumMode": "when_required",
                   "verifyRegion": False, "storageClass": "STANDARD_IA", "prefix": "", "bucketRegion": "eu-west-1"}

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("AGENT_BOM_BACKUP_ENDPOINT_URL", "https://minio.example:9000"),
            ("AGENT_BOM_BACKUP_PATH_STYLE", "true"),
            ("AGENT_BOM_BACKUP_CHECKSUM_MODE", "when_required"),
            ("AGENT_BOM_BACKUP_VERIFY_REGION", "false"),
            ("AGENT_BOM_BACKUP_STORAGE_CLASS", "STANDARD_IA"),
            ("AGENT_BOM_BACKUP_PREFIX", ""),
            ("AWS_REGION", "eu-west-1"),
        ],
        ids=["endpoint", "path-style", "checksum", "no-verify-region", "storage-class", "empty-prefix", "region"],
    )
    def test_destination_value_reaches_env(self, name, expected):
        assert env_map(_cronjob(destination=self.DESTINATION))[name] == expected

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
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::409613851297:role/agent-bom-backup"})
        assert env_map(doc)["AWS_ROLE_ARN"] == "arn:aws:iam::409613851297:role/agent-bom-backup"

    def test_web_identity_token_file_is_the_projected_token(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::409613851297:role/r"})
        assert env_map(doc)["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/agent-bom/aws-token/token"

    def test_web_identity_projects_a_token_for_sts(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::409613851297:role/r"})
        assert volumes_by_name(doc)["aws-token"]["projected"]["sources"] == [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}}
        ]

    def test_web_identity_token_is_mounted_read_only(self):
        doc = _cronjob(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::409613851297:role/r"})
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

    TUNING = {
        "dump": {"compression": "zstd:3", "compressionFallback": "gzip:1", "tenantColumn": "tenant_id",
                 "lockWaitTimeout": 120, "enableRowSecurity": True},
        "upload": {"partSize": "64MiB", "concurrency": 8},
        "metricsFile": "/tmp/backup.prom",
        "logging": {"format": "text", "level": "debug"},
    }

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("AGENT_BOM_BACKUP_COMPRESSION", "zstd:3"),
            ("AGENT_BOM_BACKUP_COMPRESSION_FALLBACK", "gzip:1"),
            ("AGENT_BOM_BACKUP_TENANT_COLUMN", "tenant_id"),
            ("AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT", "120"),
            ("AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY", "true"),
            ("AGENT_BOM_BACKUP_PART_SIZE", "64MiB"),
            ("AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY", "8"),
            ("AGENT_BOM_BACKUP_METRICS_FILE", "/tmp/backup.prom"),
            ("AGENT_BOM_BACKUP_LOG_FORMAT", "text"),
            ("AGENT_BOM_BACKUP_LOG_LEVEL", "debug"),
        ],
        ids=["compression", "compression-fallback", "tenant-column", "lock-wait", "row-security", "part-size",
             "concurrency", "metrics-file", "log-format", "log-level"],
    )
    def test_value_reaches_env(self, name, expected):
        assert env_map(_cronjob(**self.TUNING))[name] == expected

    @pytest.mark.parametrize(("seconds", "expected"), [(1, "1"), (1000000, "1000000")], ids=["one", "large"])
    def test_lock_wait_edge_values(self, seconds, expected):
        assert env_map(_cronjob(dump={"lockWaitTimeout": seconds}))["AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT"] == expected

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


class TestUpstreamBackupKeys:
    """Keys of the full agent-bom chart's controlPlane.backup block are honoured."""

    TEMPLATE = CRONJOB_TEMPLATE

    def test_env_is_appended_after_extra_env(self):
        doc = _cronjob(extraEnv=[{"name": "A", "value": "1"}], env=[{"name": "B", "value": "2"}])
        assert container(doc)["env"][-2:] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]

    def test_env_from_is_appended_after_extra_env_from(self):
        doc = _cronjob(extraEnvFrom=[{"configMapRef": {"name": "a"}}], envFrom=[{"secretRef": {"name": "b"}}])
        assert container(doc)["envFrom"] == [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "b"}}]

    def test_service_account_name_runs_the_pod_as_an_existing_account(self):
        doc = _cronjob(serviceAccountName="agent-bom-backup", serviceAccount={"annotations": None})
        assert pod_spec(doc)["serviceAccountName"] == "agent-bom-backup"

    def test_destination_region_is_the_fallback_for_bucket_region(self):
        doc = _cronjob(destination={"bucketRegion": "", "region": "eu-central-1"})
        assert env_map(doc)["AGENT_BOM_BACKUP_REGION"] == "eu-central-1"

    def test_bucket_region_wins_over_destination_region(self):
        doc = _cronjob(destination={"region": "us-east-1", "bucketRegion": "eu-west-1"})
        assert env_map(doc)["AWS_REGION"] == "eu-west-1"

    def test_destination_endpoint_is_the_endpoint_url(self):
        doc = _cronjob(destination={"endpoint": "https://minio.example:9000"})
        assert env_map(doc)["AGENT_BOM_BACKUP_ENDPOINT_URL"] == "https://minio.example:9000"


class TestMaintenanceIdentity:
    """controlPlane.postgresSecrets (or an upstream env entry) makes the backup run as agent-bom's
    maintenance identity: its URL, --enable-row-security and the app.bypass_rls=1 setting."""

    TEMPLATE = CRONJOB_TEMPLATE
    POSTGRES_SECRETS = {"enabled": True, "maintenanceSecretRef": {"name": "agent-bom-control-plane-maintenance"},
                        "appSecretRef": {"name": "agent-bom-control-plane-db"}}
    MAINTENANCE_ENV = {"name": "AGENT_BOM_POSTGRES_MAINTENANCE_URL",
                       "valueFrom": {"secretKeyRef": {"name": "maint", "key": "url"}}}

    def _env(self, **overrides: Any) -> dict[str, Any]:
        values = backup_values(**overrides)
        values["controlPlane"]["postgresSecrets"] = self.POSTGRES_SECRETS
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        return env_map(doc)

    def test_row_security_is_enabled(self):
        assert self._env()["AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY"] == "true"

    def test_bypass_setting_comes_before_the_users(self):
        env = self._env(dump={"sessionSettings": ["app.audit=off"]})
        assert env["AGENT_BOM_BACKUP_SESSION_SETTINGS"] == "app.bypass_rls=1 app.audit=off"

    def test_upstream_env_entry_is_the_maintenance_identity(self):
        env = env_map(_cronjob(env=[self.MAINTENANCE_ENV]))
        assert (env["AGENT_BOM_POSTGRES_URL"], env["AGENT_BOM_BACKUP_SESSION_SETTINGS"]) == (
            {"secretKeyRef": {"name": "maint", "key": "url"}}, "app.bypass_rls=1")

    @pytest.mark.parametrize("name", ["AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY", "AGENT_BOM_BACKUP_SESSION_SETTINGS"])
    def test_plain_database_secret_gets_no_row_security(self, name):
        assert name not in env_map(_cronjob())

    def test_session_settings_without_maintenance_identity(self):
        env = env_map(_cronjob(dump={"sessionSettings": ["app.bypass_rls=on", "app.x=1"]}))
        assert env["AGENT_BOM_BACKUP_SESSION_SETTINGS"] == "app.bypass_rls=on app.x=1"


class TestExcludeTables:
    """controlPlane.backup.dump.excludeTables: tables left out of the backup whole (--exclude-table)."""

    def test_no_exclusion_renders_no_variable(self):
        assert "AGENT_BOM_BACKUP_EXCLUDE_TABLES" not in env_map(_cronjob())

    def test_names_are_rendered_one_per_line(self):
        env = env_map(_cronjob(dump={"excludeTables": ["public.agent_bom_tenant_binding_keys", '"Vault"."Signing.Keys"']}))
        assert env["AGENT_BOM_BACKUP_EXCLUDE_TABLES"] == 'public.agent_bom_tenant_binding_keys\n"Vault"."Signing.Keys"'

    def test_the_maintenance_identity_with_an_exclusion_keeps_both(self):
        values = backup_values(dump={"excludeTables": ["public.agent_bom_tenant_binding_keys"]})
        values["controlPlane"]["postgresSecrets"] = TestMaintenanceIdentity.POSTGRES_SECRETS
        (doc,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
        env = env_map(doc)
        assert (env["AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY"], env["AGENT_BOM_BACKUP_EXCLUDE_TABLES"]) == (
            "true", "public.agent_bom_tenant_binding_keys")

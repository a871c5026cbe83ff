"""scripts/deploy/verify-eks-reference.sh against fake kubectl/aws answering recorded JSON
(tests/operator/fixtures/eks/) and the real agent-bom-backup against moto."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator import planting as helpers
from tests.operator.fakes.cluster import (
    CLUSTER, CRONJOB, NAMESPACE, REGION, FakeCluster, cronjob_backing_up_to, fixture, table,
)
from tests.operator.conftest import SessionBackup
from tests.operator.planting import Planter
from tests.support import buckets
from tests.support import cli
from devstack.s3server import MotoServer, dummy_aws_env

AGE = "newest complete backup age"
LAST_JOB = "last backup Job"
SA_ROLE = "ServiceAccount role"
EXISTS = f"CronJob {NAMESPACE}/{CRONJOB} exists"
ACTIVE = f"EKS cluster {CLUSTER} ACTIVE"


def _healthy_cluster(root: Path, planter: Planter, s3: MotoServer, bucket: str) -> FakeCluster:
    planter.plant(helpers.backup_id_aged(hours=2))
    env = {"HOME": str(root), "LANG": "C.UTF-8", **dummy_aws_env()}
    return FakeCluster(root / "fake", env).healthy(cronjob_backing_up_to(bucket, s3.endpoint_url))


@pytest.fixture
def cluster(tmp_path: Path, planter: Planter, s3: MotoServer, bucket: str) -> FakeCluster:
    """A healthy cluster whose CronJob backs up to this test's bucket, which holds a
    backup taken two hours ago; tests change single answers."""
    return _healthy_cluster(tmp_path, planter, s3, bucket)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory, s3: MotoServer,
            op_backup: SessionBackup) -> Iterator[tuple[FakeCluster, cli.Run]]:
    """One run against an unchanged healthy cluster, shared by the tests that only read it."""
    with buckets.fresh_bucket(s3, "abb-eks") as name:
        fake = _healthy_cluster(tmp_path_factory.mktemp("healthy"), Planter(s3, name, op_backup.real), s3, name)
        yield fake, fake.run()


def test_healthy_cluster_passes_every_check(healthy: tuple[FakeCluster, cli.Run]) -> None:
    _, run = healthy
    assert (run.returncode, {result for result, _ in table(run).values()}) == (0, {"PASS"}), str(run)


def test_summary_counts_the_results(healthy: tuple[FakeCluster, cli.Run]) -> None:
    assert healthy[1].stdout.splitlines()[-1] == "10 passed, 0 failed, 0 skipped"


def test_help_exits_zero_with_usage(cluster: FakeCluster) -> None:
    run = cluster.run("--help")
    assert run.returncode == 0, str(run)
    assert run.stdout.startswith("Usage: scripts/deploy/verify-eks-reference.sh")


@pytest.mark.parametrize(
    "args",
    [
        ["--region", REGION, "--namespace", NAMESPACE],
        ["--cluster-name", CLUSTER, "--namespace", NAMESPACE],
        ["--cluster-name", CLUSTER, "--region", REGION],
        ["--cluster-name", CLUSTER, "--region", REGION, "--namespace", NAMESPACE, "--bogus"],
        ["--cluster-name", "--region", REGION, "--namespace", NAMESPACE],
    ],
    ids=["no-cluster-name", "no-region", "no-namespace", "unknown-option", "option-without-value"],
)
def test_usage_errors_exit_2(cluster: FakeCluster, args: list[str]) -> None:
    run = cluster.run(*args)
    assert run.returncode == 2, str(run)
    assert run.stderr.startswith("verify-eks-reference.sh: error:")


def test_cronjob_is_looked_up_by_release_in_the_namespace(cluster: FakeCluster) -> None:
    cluster.run("--cluster-name", CLUSTER, "--region", REGION, "--namespace", "prod-ns", "--release", "cp")
    assert [c[:5] for c in cluster.calls("kubectl") if "cronjob" in c] == [["--request-timeout=20s", "-n", "prod-ns",
                                                                             "get", "cronjob"]]


def test_jobs_are_selected_by_the_component_label(healthy: tuple[FakeCluster, cli.Run]) -> None:
    jobs_call = next(c for c in healthy[0].calls("kubectl") if "jobs" in c)
    assert jobs_call[jobs_call.index("-l") + 1] == "app.kubernetes.io/component=control-plane-backup"


# ----------------------------------------------------------------------------- CronJob
def test_missing_cronjob_fails_with_kubectl_message(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "cronjob", CRONJOB], exit_code=1,
                   stderr=f'Error from server (NotFound): cronjobs.batch "{CRONJOB}" not found\n')
    run = cluster.run()
    assert (run.returncode, table(run)[EXISTS]) == (
        1, ("FAIL", f'Error from server (NotFound): cronjobs.batch "{CRONJOB}" not found '
                    "(enable it: helm upgrade agent-bom-backup ... --set controlPlane.backup.enabled=true)"))


def test_missing_cronjob_skips_the_backup_age(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "cronjob", CRONJOB], exit_code=1, stderr="Error from server (NotFound)\n")
    assert table(cluster.run())[AGE][0] == "SKIP"


def test_suspended_cronjob_fails(cluster: FakeCluster, bucket: str, s3: MotoServer) -> None:
    cluster.answer("kubectl", ["get", "cronjob", CRONJOB],
                   data=cronjob_backing_up_to(bucket, s3.endpoint_url, suspend=True))
    run = cluster.run()
    assert (run.returncode, table(run)["CronJob not suspended"][0]) == (1, "FAIL")


# ----------------------------------------------------------------------------- jobs
def test_last_job_succeeded_is_the_newest_by_creation_time(healthy: tuple[FakeCluster, cli.Run]) -> None:
    """The recorded list is not in creation order; the newest (29550060) succeeded."""
    result, detail = table(healthy[1])[LAST_JOB]
    assert (result, detail.split()[0]) == ("PASS", "agent-bom-control-plane-backup-29550060")


def test_last_job_failed_fails_and_names_the_logs(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "jobs"], file="jobs-failed.json")
    run = cluster.run()
    assert (run.returncode, table(run)[LAST_JOB]) == (1, (
        "FAIL", "agent-bom-control-plane-backup-29550060 failed (BackoffLimitExceeded: Job has reached the "
                "specified backoff limit); read kubectl -n agent-bom logs job/agent-bom-control-plane-backup-29550060"))


def test_running_job_reports_the_previous_outcome(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "jobs"], file="jobs-running.json")
    result, detail = table(cluster.run())[LAST_JOB]
    assert result == "PASS"
    assert detail.startswith("agent-bom-control-plane-backup-29548620 succeeded")
    assert detail.endswith("(job agent-bom-control-plane-backup-29550060 is running now)")


def test_no_job_yet_is_skipped_with_the_command_to_start_one(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "jobs"], file="jobs-empty.json")
    result, detail = table(cluster.run())[LAST_JOB]
    assert result == "SKIP"
    assert detail.endswith(f"kubectl -n {NAMESPACE} create job --from=cronjob/{CRONJOB} {CRONJOB}-manual")


# ----------------------------------------------------------------------------- identity
def test_role_annotation_is_reported(healthy: tuple[FakeCluster, cli.Run]) -> None:
    assert table(healthy[1])[SA_ROLE] == (
        "PASS", f"{CRONJOB}: eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/agent-bom-backup")


def test_unannotated_service_account_fails(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "serviceaccount"], file="serviceaccount-unannotated.json")
    run = cluster.run()
    assert (run.returncode, table(run)[SA_ROLE][0]) == (1, "FAIL")


def test_pod_identity_association_counts_as_a_role(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["get", "serviceaccount"], file="serviceaccount-unannotated.json")
    cluster.answer("aws", ["eks", "list-pod-identity-associations"], file="pod-identity-associations.json")
    result, detail = table(cluster.run())[SA_ROLE]
    assert result == "PASS"
    assert "EKS Pod Identity arn:aws:eks:us-east-1:111122223333:podidentityassociation/" in detail


def test_eks_cluster_not_active_fails(cluster: FakeCluster) -> None:
    cluster.answer("aws", ["eks", "describe-cluster"], file="eks-describe-cluster-updating.json")
    run = cluster.run()
    assert (run.returncode, table(run)[ACTIVE]) == (1, ("FAIL", "status UPDATING (expected ACTIVE)"))


def test_describe_cluster_gets_name_and_region(healthy: tuple[FakeCluster, cli.Run]) -> None:
    call = next(c for c in healthy[0].calls("aws") if "describe-cluster" in c)
    assert (call[call.index("--name") + 1], call[call.index("--region") + 1]) == (CLUSTER, REGION)


def test_sts_failure_fails_with_its_message(cluster: FakeCluster) -> None:
    cluster.answer("aws", ["sts", "get-caller-identity"], exit_code=255,
                   stderr="\nUnable to locate credentials. You can configure credentials by running \"aws configure\".\n")
    assert table(cluster.run())["AWS identity"] == (
        "FAIL", 'aws sts get-caller-identity failed: Unable to locate credentials. You can configure credentials '
                'by running "aws configure".')


def test_kubectl_pointing_at_another_cluster_fails(cluster: FakeCluster) -> None:
    cluster.answer("kubectl", ["config", "view", "--minify"], file="kubeconfig-minify-other-cluster.json")
    result, detail = table(cluster.run())["kubectl context"]
    assert result == "FAIL"
    assert detail.endswith(f"aws eks update-kubeconfig --name {CLUSTER} --region {REGION}")


# ----------------------------------------------------------------------------- missing tools
@pytest.fixture(scope="module")
def without_kubectl(tmp_path_factory: pytest.TempPathFactory, s3: MotoServer, op_backup: SessionBackup) -> cli.Run:
    """One run with no kubectl on PATH, shared by the tests that read it."""
    with buckets.fresh_bucket(s3, "abb-eks") as name:
        fake = _healthy_cluster(tmp_path_factory.mktemp("no-kubectl"), Planter(s3, name, op_backup.real), s3, name)
        fake.remove("kubectl")
        return fake.run()


def test_without_kubectl_the_cluster_checks_fail_or_skip_with_a_reason(without_kubectl: cli.Run) -> None:
    rows = table(without_kubectl)
    assert (without_kubectl.returncode, rows["kubectl installed"][0], rows[EXISTS], rows[AGE][0]) == (
        1, "FAIL", ("SKIP", "needs kubectl"), "SKIP")


def test_without_kubectl_the_reason_says_how_to_get_it(without_kubectl: cli.Run) -> None:
    assert table(without_kubectl)["kubectl installed"][1] == (
        f"kubectl not found on PATH: install it, then aws eks update-kubeconfig --name {CLUSTER} --region {REGION}")


def test_without_aws_the_aws_checks_skip_and_the_rest_passes(cluster: FakeCluster) -> None:
    cluster.remove("aws")
    run = cluster.run()
    rows = table(run)
    assert (run.returncode, rows["aws CLI installed"][0], rows["AWS identity"], rows[AGE][0]) == (
        0, "SKIP", ("SKIP", "needs the aws CLI"), "PASS")


# ----------------------------------------------------------------------------- backup age (real moto)
def test_fresh_backup_age_passes_with_the_check_line(healthy: tuple[FakeCluster, cli.Run]) -> None:
    result, detail = table(healthy[1])[AGE]
    assert result == "PASS"
    assert detail.startswith("OK: newest complete backup agent-bom-")


def test_old_backup_fails_the_age_check(cluster: FakeCluster) -> None:
    run = cluster.run("--cluster-name", CLUSTER, "--region", REGION, "--namespace", NAMESPACE, "--max-age", "1h")
    assert run.returncode == 1, str(run)
    assert table(run)[AGE][1].startswith("STALE: newest complete backup")


def test_missing_cli_fails_the_age_check_with_a_hint(cluster: FakeCluster) -> None:
    cluster.remove("agent-bom-backup")
    assert table(cluster.run())[AGE] == (
        "FAIL", "agent-bom-backup not found: install agent-bom-backup (pip install . in a checkout) "
                "or set AGENT_BOM_BACKUP_CLI")


def test_bucket_and_prefix_come_from_the_cronjob_not_the_shell(cluster: FakeCluster) -> None:
    run = cluster.run(AGENT_BOM_BACKUP_BUCKET="some-other-bucket", AGENT_BOM_BACKUP_PREFIX="elsewhere",
                      AGENT_BOM_BACKUP_MAX_AGE="1m")
    assert table(run)[AGE][0] == "PASS", str(run)


def test_cronjob_fixture_env_matches_the_chart(tmp_path: Path) -> None:
    """The recorded CronJob carries the env names the chart renders for the runbook values."""
    from devstack import tools

    values = tmp_path / "values.yaml"
    values.write_text(
        "controlPlane:\n  backup:\n    enabled: true\n    destination:\n      bucket: agent-bom-prod-backups\n"
        "      bucketRegion: us-east-1\n      endpointUrl: http://127.0.0.1:9000\n"
    )
    rendered = subprocess.run(
        [str(tools.helm_binary(4)), "template", "agent-bom", str(tools.repo_root() / "deploy/helm/agent-bom"),
         "-n", NAMESPACE, "-f", str(values), "--show-only", "templates/controlplane-backup-cronjob.yaml"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    recorded = {e["name"] for e in fixture("cronjob.json")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                ["containers"][0]["env"]}
    read_by_script = {"AGENT_BOM_BACKUP_BUCKET", "AGENT_BOM_BACKUP_PREFIX", "AGENT_BOM_BACKUP_REGION",
                      "AGENT_BOM_BACKUP_ENDPOINT_URL", "AGENT_BOM_BACKUP_PATH_STYLE", "AGENT_BOM_BACKUP_CHECKSUM_MODE"}
    assert {n for n in read_by_script if f"name: {n}\n" in rendered} == read_by_script and \
        read_by_script - {"AGENT_BOM_BACKUP_ENDPOINT_URL"} <= recorded


def test_unreachable_api_server_is_not_blamed_on_the_chart(cluster: FakeCluster) -> None:
    message = "Unable to connect to the server: dial tcp 10.0.12.7:443: i/o timeout"
    cluster.answer("kubectl", ["get", "cronjob", CRONJOB], exit_code=1, stderr=message + "\n")
    assert table(cluster.run())[EXISTS] == ("FAIL", message)

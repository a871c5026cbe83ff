"""A failed backup reaches a person (issue 27): the real CLI pushes its metrics to Debian's
prometheus-pushgateway (read back from its /metrics, as Prometheus scrapes them) and pings
and posts to a loopback receiver standing in for healthchecks.io and a Slack webhook.

One module-scoped story, in order: a backup that succeeds, a backup that fails (a wrong
database password: exit 4), and a drill (``restore latest`` with the drill's kind) of the
first backup. Each test asserts one fact of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.pgcluster import PgCluster
from devstack.pushgateway import HttpReceiver, Pushgateway, Received
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

NAMESPACE = "agent-bom"
BACKUP_CRONJOB = "agent-bom-control-plane-backup"
DRILL_CRONJOB = "agent-bom-control-plane-restore-drill"
PING_TOKEN = "6f1c0d2e-9a8b-4c3d-8e7f-notify-ping-token"
HOOK_TOKEN = "T000/B000/notify-webhook-token-XXXX"
WRONG_PASSWORD = "wrong-Pa55word-for-the-test"


@dataclass
class Step:
    run: cli.Run
    requests: list[Received]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Story:
    backup: Step
    failed: Step
    drill: Step
    secrets: list[str]
    manifest: dict[str, Any]


@pytest.fixture(scope="module")
def story(s3: MotoServer, new_bucket: Callable[[], str], source15: postgres.Database, pg15: PgCluster, gateway: Pushgateway,
          receiver: HttpReceiver) -> Story:
    bucket = new_bucket()

    def env(cronjob: str, database_url: str, **extra: str) -> dict[str, str]:
        return cli.job_env(s3.endpoint_url, bucket, database_url,
                           AGENT_BOM_BACKUP_PUSHGATEWAY_URL=gateway.url,
                           AGENT_BOM_BACKUP_CRONJOB=cronjob, AGENT_BOM_BACKUP_NAMESPACE=NAMESPACE,
                           AGENT_BOM_BACKUP_PING_URL=f"{receiver.url}/ping/{PING_TOKEN}",
                           AGENT_BOM_BACKUP_WEBHOOK_URL=f"{receiver.url}/services/{HOOK_TOKEN}", **extra)

    def step(run: cli.Run) -> Step:
        return Step(run, receiver.take(), gateway.samples())

    backup = step(cli.backup(env(BACKUP_CRONJOB, source15.url)))
    wrong = pg15.url(source15.name, "postgres", WRONG_PASSWORD)
    failed = step(cli.backup(env(BACKUP_CRONJOB, wrong)))
    target = postgres.new_database(pg15, "drill")
    drill = step(cli.restore(env(DRILL_CRONJOB, source15.url, AGENT_BOM_BACKUP_JOB_KIND="drill"), "latest",
                             pg15.superuser_url(target)))
    manifest = buckets.read_manifest(s3.client(), bucket, backup.run.uri.removeprefix(f"s3://{bucket}/")) \
        if backup.run.returncode == 0 else {}
    return Story(backup, failed, drill, [pg15.superuser_password, WRONG_PASSWORD, PING_TOKEN, HOOK_TOKEN], manifest)


def _group(step: Step, kind: str, cronjob: str = BACKUP_CRONJOB) -> dict[str, float]:
    wanted = {("job", "agent-bom-backup"), ("namespace", NAMESPACE), ("cronjob", cronjob), ("kind", kind)}
    return {name: value for (name, labels), value in step.samples.items()
            if {item for item in labels if item[0] != "instance"} == wanted}


def _pings(step: Step) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in step.requests if r.path.startswith("/ping/")]


def _webhook(step: Step) -> dict[str, object]:
    (hook,) = [r for r in step.requests if r.path.startswith("/services/")]
    assert (hook.method, hook.headers["content-type"]) == ("POST", "application/json")
    return json.loads(hook.body)


def test_runs_end_as_they_should(story: Story) -> None:
    assert [story.backup.run.returncode, story.failed.run.returncode, story.drill.run.returncode] == [0, 4, 0], \
        "\n".join(map(str, (story.backup.run, story.failed.run, story.drill.run)))


def test_backup_pushes_its_sizes_and_counts(story: Story) -> None:
    manifest = story.manifest
    pushed = _group(story.backup, "backup")
    assert {k: pushed.get(f"agent_bom_backup_{k}") for k in ("last_exit_code", "last_size_bytes", "last_parts",
                                                             "last_rows", "last_tenants")} == {
        "last_exit_code": 0, "last_size_bytes": manifest["dump"]["size"], "last_parts": manifest["dump"]["parts"],
        "last_rows": sum(t["rows"] for t in manifest["tables"]),
        "last_tenants": len({k for t in manifest["tables"] for k in (t.get("tenants") or {})})}


def test_failure_keeps_the_last_success_and_adds_its_own(story: Story) -> None:
    before, after = _group(story.backup, "backup"), _group(story.failed, "backup")
    assert (after["agent_bom_backup_last_success_timestamp_seconds"]
            == before["agent_bom_backup_last_success_timestamp_seconds"],
            after["agent_bom_backup_last_exit_code"],
            after["agent_bom_backup_last_failure_timestamp_seconds"]
            >= before["agent_bom_backup_last_success_timestamp_seconds"]) == (True, 4, True)


def test_drill_pushes_the_verified_restore_time_in_its_own_group(story: Story) -> None:
    drill = _group(story.drill, "drill", DRILL_CRONJOB)
    assert (drill.get("agent_bom_backup_last_exit_code"), drill.get("agent_bom_backup_last_restore_seconds", 0) > 0,
            "agent_bom_backup_last_success_timestamp_seconds" in drill) == (0, True, True)


def test_groups_are_per_cronjob_not_per_job(story: Story) -> None:
    groups = {frozenset(dict(labels).items()) - {("instance", "")}
              for (_name, labels) in story.drill.samples}
    assert groups == {
        frozenset({("job", "agent-bom-backup"), ("namespace", NAMESPACE), ("cronjob", BACKUP_CRONJOB), ("kind", "backup")}),
        frozenset({("job", "agent-bom-backup"), ("namespace", NAMESPACE), ("cronjob", DRILL_CRONJOB), ("kind", "drill")}),
    }


def test_success_pings_start_then_success(story: Story) -> None:
    assert _pings(story.backup) == [("POST", f"/ping/{PING_TOKEN}/start"), ("POST", f"/ping/{PING_TOKEN}")]


def test_failure_pings_start_then_fail_with_exit_code_and_reason(story: Story) -> None:
    (fail,) = [r for r in story.failed.requests if r.path.endswith("/fail")]
    body = fail.body.decode()
    assert (_pings(story.failed), body.startswith("exit code 4: agent-bom backup failed with exit code 4: "),
            body.count("\n")) == ([("POST", f"/ping/{PING_TOKEN}/start"), ("POST", f"/ping/{PING_TOKEN}/fail")],
                                  True, 1), body


def test_success_webhook_says_what_ran_and_what_it_wrote(story: Story) -> None:
    payload = _webhook(story.backup)
    assert {k: payload.get(k) for k in ("kind", "status", "exit_code", "cronjob", "backup_uri")} == {
        "kind": "backup", "status": "success", "exit_code": 0, "cronjob": BACKUP_CRONJOB,
        "backup_uri": story.backup.run.uri}


def test_failure_webhook_has_a_slack_text_and_the_reason(story: Story) -> None:
    payload = _webhook(story.failed)
    assert (payload["status"], payload["exit_code"], str(payload["text"]).startswith(":rotating_light: "),
            bool(payload["reason"])) == ("failure", 4, True, True), payload


def test_no_secret_or_database_url_leaves_the_pod(story: Story) -> None:
    sent = [r.body.decode() + " " + json.dumps(r.query) for step in (story.backup, story.failed, story.drill)
            for r in step.requests]
    leaks = [s for s in story.secrets[:2] if any(s in text for text in sent)]
    assert (leaks, [t for t in sent if "postgresql://" in t]) == ([], [])


def test_no_notification_url_reaches_the_log(story: Story) -> None:
    logs = "".join(step.run.stderr + step.run.stdout for step in (story.backup, story.failed, story.drill))
    assert [s for s in story.secrets if s in logs] == []


def test_after_the_manifest_nothing_fails_the_backup(s3: MotoServer, bucket: str, source15: postgres.Database,
                                                     receiver: HttpReceiver) -> None:
    """A --metrics-file that cannot be written and a ping service answering 500: both are
    warnings after the backup was committed; the run exits 0 (a retried exit would take the
    backup again and fire the failed-Job alert for a backup that succeeded)."""
    receiver.failing[f"/ping/{PING_TOKEN}-down"] = 500
    run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source15.url,
                                 AGENT_BOM_BACKUP_METRICS_FILE="/dev/null/backup.prom",
                                 AGENT_BOM_BACKUP_PING_URL=f"{receiver.url}/ping/{PING_TOKEN}-down"))
    receiver.take()
    warnings = [line["message"] for line in run.log if line.get("level") == "warning"]
    assert (run.returncode, run.errors, any("--metrics-file failed after the backup was committed" in w
                                            for w in warnings),
            any(w.startswith("the end ping failed; the run's outcome is unchanged") for w in warnings)) == (
        0, [], True, True), str(run)


def test_push_carries_basic_auth_to_the_group_of_the_cronjob(receiver: HttpReceiver) -> None:
    """What a Pushgateway behind basic auth gets (the receiver stands in for it): a POST
    (pushadd: only the pushed metrics of the group are replaced) to the group of the
    CronJob, with the credentials of the Secret."""
    from agent_bom_backup.notify import MonitorConfig, Outcome, push_metrics

    config = MonitorConfig(kind="backup", pushgateway_url=receiver.url, pushgateway_basic_auth=("pusher", "pw-123"),
                           cronjob=BACKUP_CRONJOB, namespace=NAMESPACE)
    push_metrics(config, Outcome(kind="backup", exit_code=6, reason="x", started=1.0, finished=2.0))
    (request,) = receiver.take()
    assert (request.method, request.path, request.headers["authorization"]) == (
        "POST", f"/metrics/job/agent-bom-backup/cronjob/{BACKUP_CRONJOB}/namespace/{NAMESPACE}",
        "Basic cHVzaGVyOnB3LTEyMw==")

"""notify.py: what each ping style and the webhook send, that a failing notification is a
warning and never changes the outcome, and that nothing sent carries a secret or a
database URL. The requests are captured by an injected sender (no network here; the e2e
tests send them to a loopback receiver and a real Pushgateway)."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest

from agent_bom_backup import notify
from agent_bom_backup.log import LOGGER_NAME, Redactor, setup_logging
from agent_bom_backup.notify import Monitor, MonitorConfig, Outcome, RunFacts, clean_text, ping_request

SECRET = "s3cr3t-pa55word"
PING = "https://hc-ping.example/0f3c1a2b-token-in-the-path"


@pytest.fixture(autouse=True)
def _log_and_facts() -> Iterator[io.StringIO]:
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    stream = io.StringIO()
    redactor = Redactor()
    redactor.add(SECRET)
    for secret in MonitorConfig(ping_url=PING).secrets():
        redactor.add(secret)
    setup_logging("json", "info", redactor, stream=stream)
    notify.reset()
    monkey_sleep = notify.RETRY_PAUSE_S
    notify.RETRY_PAUSE_S = 0
    yield stream
    notify.RETRY_PAUSE_S = monkey_sleep
    notify.reset()
    logger.handlers[:], logger.level, logger.propagate = saved


def _outcome(exit_code: int, reason: str = "", **facts: Any) -> Outcome:
    return Outcome(kind="backup", exit_code=exit_code, reason=reason, started=1000.0, finished=1042.0,
                   facts=RunFacts(**facts))


class Recorder:
    def __init__(self, status: int = 200, error: Exception | None = None) -> None:
        self.requests: list[Any] = []
        self.status, self.error = status, error

    def __call__(self, request: Any, timeout: float) -> int:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.status

    def calls(self) -> list[tuple[str, str, bytes]]:
        return [(r.get_method(), r.full_url, r.data or b"") for r in self.requests]


# ------------------------------------------------------------------ ping styles
@pytest.mark.parametrize(
    ("style", "phase", "exit_code", "method", "url"),
    [
        ("healthchecks", "start", None, "POST", PING + "/start"),
        ("healthchecks", "end", 0, "POST", PING),
        ("healthchecks", "end", 6, "POST", PING + "/fail"),
        ("cronitor", "start", None, "GET", PING + "?state=run"),
    ],
    ids=["healthchecks-start", "healthchecks-success", "healthchecks-failure", "cronitor-start"],
)
def test_ping_url_per_style_and_phase(style: str, phase: str, exit_code: int | None, method: str, url: str) -> None:
    request = ping_request(style, PING, phase, None if exit_code is None else _outcome(exit_code, "no bucket"))
    assert (request.get_method(), request.full_url) == (method, url)


def test_healthchecks_failure_body_is_exit_code_and_one_line() -> None:
    request = ping_request("healthchecks", PING, "end", _outcome(6, "upload failed:\nbucket gone"))
    assert request.data == b"exit code 6: agent-bom backup failed with exit code 6: upload failed: bucket gone\n"


@pytest.mark.parametrize(("exit_code", "state"), [(0, "complete"), (6, "fail")], ids=["success", "failure"])
def test_cronitor_end_state_and_status_code(exit_code: int, state: str) -> None:
    query = _query(ping_request("cronitor", PING, "end", _outcome(exit_code, "x")).full_url)
    assert (query["state"], query["status_code"]) == ([state], [str(exit_code)])


@pytest.mark.parametrize(("exit_code", "status"), [(0, "up"), (6, "down")], ids=["success", "failure"])
def test_uptime_kuma_end_status(exit_code: int, status: str) -> None:
    query = _query(ping_request("uptime-kuma", PING, "end", _outcome(exit_code, "x")).full_url)
    assert (query["status"], query["ping"]) == ([status], ["42000"])


def test_uptime_kuma_has_no_start_ping() -> None:
    assert ping_request("uptime-kuma", PING, "start", None) is None


def test_ping_keeps_the_url_s_own_query() -> None:
    url = ping_request("cronitor", "https://cronitor.example/p/key/job?env=prod", "start", None).full_url
    assert _query(url) == {"env": ["prod"], "state": ["run"]}


def _query(url: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)


# ------------------------------------------------------------------ scrubbing
def test_clean_text_removes_secrets_and_database_urls() -> None:
    line = clean_text(f"connect to postgresql://backup:{SECRET}@db.internal:5432/agent_bom failed; "
                      f"password={SECRET} host=db.internal")
    assert (SECRET in line, "postgresql://" in line, "db.internal" in line) == (False, False, False), line


def test_clean_text_is_one_short_line() -> None:
    line = clean_text("a\nb\n" + "x" * 1000)
    assert ("\n" in line, len(line)) == (False, notify.MAX_REASON)


def test_webhook_payload_carries_no_secret_or_database_url() -> None:
    outcome = _outcome(5, f"pg_dump failed: postgresql://u:{SECRET}@db/agent_bom refused")
    text = json.dumps(notify.webhook_payload(outcome, MonitorConfig(webhook_url="https://hooks.example/x")))
    assert (SECRET in text, "postgresql://" in text) == (False, False), text


def test_webhook_payload_fields() -> None:
    outcome = _outcome(0, backup_uri="s3://b/p/agent-bom-20261207T030000Z.dump", bytes=123, rows=7, tenants=2, parts=1)
    payload = notify.webhook_payload(outcome, MonitorConfig(cronjob="cj", namespace="ns"))
    assert {k: payload[k] for k in ("kind", "status", "exit_code", "cronjob", "namespace", "bytes", "rows",
                                    "tenants", "parts", "duration_seconds")} == {
        "kind": "backup", "status": "success", "exit_code": 0, "cronjob": "cj", "namespace": "ns", "bytes": 123,
        "rows": 7, "tenants": 2, "parts": 1, "duration_seconds": 42.0}


def test_webhook_text_is_what_slack_shows() -> None:
    payload = notify.webhook_payload(_outcome(6, "bucket gone"), MonitorConfig())
    assert payload["text"] == ":rotating_light: agent-bom backup failed with exit code 6: bucket gone"


# ------------------------------------------------------------------ never fails the run
@pytest.mark.parametrize("failure", [Recorder(status=500), Recorder(error=urllib.error.URLError("refused")),
                                     Recorder(error=TimeoutError("timed out"))],
                         ids=["http-500", "connection-refused", "timeout"])
def test_failing_notification_is_a_warning_and_the_outcome_stands(failure: Recorder,
                                                                  _log_and_facts: io.StringIO) -> None:
    monitor = Monitor(MonitorConfig(ping_url=PING, webhook_url=PING + "/hook"), sender=failure)
    outcome = monitor.finish(0)
    warnings = [json.loads(line) for line in _log_and_facts.getvalue().splitlines()]
    assert (outcome.exit_code, len(failure.requests), [w["severity"] for w in warnings]) == (
        0, 2 * notify.ATTEMPTS, ["WARNING", "WARNING"])


def test_a_client_error_is_not_retried() -> None:
    failure = Recorder(error=urllib.error.HTTPError(PING, 404, "Not Found", {}, None))  # type: ignore[arg-type]
    Monitor(MonitorConfig(ping_url=PING), sender=failure).finish(0)
    assert len(failure.requests) == 1


def test_warning_names_the_host_not_the_token(_log_and_facts: io.StringIO) -> None:
    Monitor(MonitorConfig(ping_url=PING), sender=Recorder(status=503)).finish(0)
    (line,) = [json.loads(line) for line in _log_and_facts.getvalue().splitlines()]
    assert (line["target"], "token-in-the-path" in _log_and_facts.getvalue()) == ("https://hc-ping.example", False)


def test_a_retry_after_a_server_error_delivers() -> None:
    answers = iter([503, 200])
    sent: list[Any] = []

    def flaky(request: Any, timeout: float) -> int:
        sent.append(request)
        return next(answers)

    Monitor(MonitorConfig(ping_url=PING), sender=flaky).finish(0)
    assert [r.full_url for r in sent] == [PING, PING]


def test_start_and_end_ping_in_order() -> None:
    recorder = Recorder()
    monitor = Monitor(MonitorConfig(ping_url=PING), sender=recorder)
    monitor.start()
    monitor.finish(7, "verification failed")
    assert [url for _method, url, _body in recorder.calls()] == [PING + "/start", PING + "/fail"]


def test_recorded_facts_reach_the_webhook() -> None:
    recorder = Recorder()
    notify.record(backup_uri="s3://b/k.dump", bytes=99)
    Monitor(MonitorConfig(webhook_url="https://hooks.example/x"), sender=recorder).finish(0)
    (request,) = recorder.requests
    assert json.loads(request.data)["bytes"] == 99


def test_unknown_fact_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        notify.record(colour="red")


def test_after_commit_turns_a_failure_into_a_warning(_log_and_facts: io.StringIO) -> None:
    def broken() -> None:
        raise PermissionError("read-only file system: '/metrics/backup.prom'")

    notify.after_commit("writing --metrics-file", broken)
    (line,) = [json.loads(line) for line in _log_and_facts.getvalue().splitlines()]
    assert (line["level"], "still succeeds (exit 0)" in line["message"]) == ("warning", True)


def test_pushgateway_grouping_key_is_the_cronjob_not_the_job() -> None:
    config = MonitorConfig(kind="drill", cronjob="agent-bom-control-plane-restore-drill", namespace="agent-bom")
    assert config.grouping_key() == {"namespace": "agent-bom", "cronjob": "agent-bom-control-plane-restore-drill"}

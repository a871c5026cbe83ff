"""How a run reaches a person: metrics pushed to a Prometheus Pushgateway, a dead-man
ping in the style of the monitoring service, and a JSON webhook.

Every backup, drill, retention and restore run reports its end, success *and* failure
(:func:`Monitor.finish`); pings also report its start. Nothing here can fail a run: each
notification is tried a few times with a short timeout, and a failure is a warning.
Nothing here can carry a secret or a database URL: every text sent is scrubbed with the
run's redactor and database URLs are replaced by ``<database>``.

Pushed metrics (``pushadd_to_gateway``: a failure replaces the failure metrics of the
group and keeps the last success's) are grouped by the CronJob's name and namespace
(``--cronjob`` / ``--namespace``; never the Job's name, which would add a group per run),
with a ``kind`` label (backup, drill, retention, restore).
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # urllib.request loads http.client and ssl: only when something is sent
    import urllib.request

from .log import event, get_logger, scrub

KINDS = ("backup", "drill", "retention", "restore")
PING_STYLES = ("healthchecks", "cronitor", "uptime-kuma")
#: total attempts of one notification (a couple of retries), and the pause before each retry
ATTEMPTS = 3
RETRY_PAUSE_S = 0.5
DEFAULT_TIMEOUT_S = 10.0
#: the longest reason sent (a ping body, a webhook's reason)
MAX_REASON = 300
METRIC_PREFIX = "agent_bom_backup"
PUSH_JOB = "agent-bom-backup"

_DATABASE_URL = re.compile(r"\bpostgres(?:ql)?://\S+", re.IGNORECASE)
_CONNINFO_PAIR = re.compile(r"\b(?:host|hostaddr|user|password|dbname|port|sslpassword)\s*=\s*('[^']*'|\S+)",
                            re.IGNORECASE)


def clean_text(text: str) -> str:
    """``text`` as it may leave the pod: one line, the run's secrets scrubbed, no
    database URL or conninfo, at most :data:`MAX_REASON` characters."""
    line = " ".join(scrub(text).split())
    line = _DATABASE_URL.sub("<database>", line)
    line = _CONNINFO_PAIR.sub(lambda m: m.group(0).split("=", 1)[0].strip() + "=<redacted>", line)
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."


def where(url: str) -> str:
    """A notification URL as it may be logged: scheme and host only (the path and the
    query carry the token)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


# --------------------------------------------------------------------------- facts of a run
@dataclass
class RunFacts:
    """What the run produced, recorded by the command as it learns it (all optional: a
    run that failed early knows little)."""

    backup_uri: str | None = None
    bytes: int | None = None
    rows: int | None = None
    tenants: int | None = None
    parts: int | None = None
    #: drill and restore: seconds the verified restore took
    restore_seconds: float | None = None
    #: retention: backups deleted
    deleted: int | None = None


_facts = RunFacts()


def record(**facts: object) -> None:
    """Record facts of this run for the notifications at its end."""
    for name, value in facts.items():
        if not hasattr(_facts, name):
            raise TypeError(f"unknown run fact {name!r}")
        setattr(_facts, name, value)


def recorded() -> RunFacts:
    return _facts


def reset() -> None:
    global _facts
    _facts = RunFacts()


@dataclass(frozen=True)
class Outcome:
    """How a run ended."""

    kind: str
    exit_code: int
    reason: str
    started: float
    finished: float
    facts: RunFacts = field(default_factory=RunFacts)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def status(self) -> str:
        return "success" if self.ok else "failure"

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)

    def line(self) -> str:
        """One line for a ping body or a chat message."""
        what = f"agent-bom {self.kind}"
        if self.ok:
            detail = ", ".join(d for d in (
                self.facts.backup_uri,
                f"{self.facts.bytes} bytes" if self.facts.bytes is not None else None,
                f"{self.facts.deleted} deleted" if self.facts.deleted is not None else None,
            ) if d)
            return clean_text(f"{what} succeeded in {self.duration:.0f}s" + (f": {detail}" if detail else ""))
        return clean_text(f"{what} failed with exit code {self.exit_code}: {self.reason}")


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class MonitorConfig:
    kind: str = "backup"
    pushgateway_url: str | None = field(default=None, repr=False)
    pushgateway_timeout_s: float = DEFAULT_TIMEOUT_S
    #: "user:password" for basic auth, from the environment only
    pushgateway_basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    #: a whole Authorization header value (e.g. "Bearer ..."), from the environment only
    pushgateway_authorization: str | None = field(default=None, repr=False)
    cronjob: str | None = None
    namespace: str | None = None
    ping_url: str | None = field(default=None, repr=False)
    ping_style: str = "healthchecks"
    webhook_url: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def enabled(self) -> bool:
        return bool(self.pushgateway_url or self.ping_url or self.webhook_url)

    def grouping_key(self) -> dict[str, str]:
        return {"namespace": self.namespace or "default", "cronjob": self.cronjob or f"agent-bom-{self.kind}"}

    def secrets(self) -> list[str]:
        """Values the log must never show (the URLs carry tokens)."""
        values = [self.ping_url, self.webhook_url, self.pushgateway_authorization]
        if self.pushgateway_basic_auth:
            values.append(self.pushgateway_basic_auth[1])
        for url in (self.ping_url, self.webhook_url, self.pushgateway_url):
            if url:
                parts = urllib.parse.urlsplit(url)
                values += [parts.path.strip("/"), parts.query, parts.password]
                values += [segment for segment in parts.path.split("/") if len(segment) >= 16]
        return [v for v in values if v]


# --------------------------------------------------------------------------- HTTP
Sender = Callable[[Any, float], int]


def _send(request: urllib.request.Request, timeout: float) -> int:
    import urllib.request

    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URL
        response.read(4096)
        return int(response.status)


def _deliver(what: str, url: str, request_for: Callable[[], urllib.request.Request], timeout: float,
             sender: Sender = _send) -> bool:
    """Send with a few attempts; False (and a warning) when every attempt failed."""
    import urllib.error

    error = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            status = sender(request_for(), timeout)
            if status < 300:
                return True
            error = f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break
        except (OSError, ValueError) as exc:
            error = clean_text(str(getattr(exc, "reason", None) or exc))
        if attempt < ATTEMPTS:
            time.sleep(RETRY_PAUSE_S * attempt)
    event(get_logger(), f"{what} failed; the run's outcome is unchanged", level=logging.WARNING,
          target=where(url), error=error, attempts=attempt)
    return False


# --------------------------------------------------------------------------- pings
def ping_request(style: str, url: str, phase: str, outcome: Outcome | None) -> urllib.request.Request | None:
    """The request a dead-man ping service expects for ``phase`` (start or end).

    healthchecks (healthchecks.io, Better Stack): POST ``<url>/start``, ``<url>`` or
    ``<url>/fail``, the exit code and one line of reason in the body; cronitor: GET
    ``<url>?state=run|complete|fail`` with ``status_code`` and ``message``; uptime-kuma
    (push monitors): GET ``<url>?status=up|down&msg=...&ping=<ms>`` at the end only.
    """
    import urllib.request

    headers = {"User-Agent": "agent-bom-backup"}
    if style == "healthchecks":
        base = url.rstrip("/")
        if phase == "start":
            return urllib.request.Request(f"{base}/start", data=b"", method="POST", headers=headers)
        assert outcome is not None
        body = f"exit code {outcome.exit_code}: {outcome.line()}\n".encode()
        target = base if outcome.ok else f"{base}/fail"
        return urllib.request.Request(target, data=body, method="POST",
                                      headers={**headers, "Content-Type": "text/plain; charset=utf-8"})
    if style == "cronitor":
        if phase == "start":
            query = {"state": "run"}
        else:
            assert outcome is not None
            query = {"state": "complete" if outcome.ok else "fail", "status_code": str(outcome.exit_code),
                     "message": outcome.line(), "metric": f"duration:{outcome.duration:.1f}"}
        return urllib.request.Request(_with_query(url, query), method="GET", headers=headers)
    if style == "uptime-kuma":
        if phase == "start":
            return None  # a push monitor has no "started" state
        assert outcome is not None
        query = {"status": "up" if outcome.ok else "down", "msg": outcome.line(),
                 "ping": str(int(outcome.duration * 1000))}
        return urllib.request.Request(_with_query(url, query), method="GET", headers=headers)
    raise ValueError(f"unknown ping style {style!r}")


def _with_query(url: str, query: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    merged = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(query.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(merged)))


# --------------------------------------------------------------------------- webhook
def webhook_payload(outcome: Outcome, config: MonitorConfig) -> dict[str, object]:
    """The generic JSON payload, with a ``text`` Slack and Teams incoming webhooks show."""
    facts = {k: v for k, v in asdict(outcome.facts).items() if v is not None}
    if "backup_uri" in facts:
        facts["backup_uri"] = clean_text(str(facts["backup_uri"]))
    icon = ":white_check_mark:" if outcome.ok else ":rotating_light:"
    return {
        "text": f"{icon} {outcome.line()}",
        "source": "agent-bom-backup",
        "kind": outcome.kind,
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "reason": "" if outcome.ok else clean_text(outcome.reason),
        "namespace": config.grouping_key()["namespace"],
        "cronjob": config.grouping_key()["cronjob"],
        "started_at": datetime.fromtimestamp(outcome.started, timezone.utc).isoformat(),
        "finished_at": datetime.fromtimestamp(outcome.finished, timezone.utc).isoformat(),
        "duration_seconds": round(outcome.duration, 3),
        **facts,
    }


# --------------------------------------------------------------------------- metrics
def push_metrics(config: MonitorConfig, outcome: Outcome) -> None:
    """``pushadd_to_gateway``: replaces only the metrics pushed now, so a failure keeps
    the last success's timestamp and sizes."""
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.exposition import basic_auth_handler, default_handler, pushadd_to_gateway

    registry = CollectorRegistry()
    labels = {"kind": outcome.kind}

    def gauge(name: str, help_text: str, value: float) -> None:
        Gauge(f"{METRIC_PREFIX}_{name}", help_text, list(labels), registry=registry).labels(**labels).set(value)

    gauge("last_exit_code", "Exit code of the last run.", outcome.exit_code)
    gauge("last_duration_seconds", "Duration of the last run.", outcome.duration)
    gauge("last_run_timestamp_seconds", "Time the last run finished.", outcome.finished)
    if outcome.ok:
        gauge("last_success_timestamp_seconds", "Time the last successful run finished.", outcome.finished)
        facts = outcome.facts
        for name, help_text, value in (
            ("last_size_bytes", "Size of the last successful dump.", facts.bytes),
            ("last_rows", "Rows of the last successful backup or verified restore.", facts.rows),
            ("last_tenants", "Tenants of the last successful backup or verified restore.", facts.tenants),
            ("last_parts", "Multipart parts of the last successful dump.", facts.parts),
            ("last_restore_seconds", "Duration of the last verified restore (drill, restore).",
             facts.restore_seconds),
            ("last_deleted_backups", "Backups the last retention run deleted.", facts.deleted),
        ):
            if value is not None:
                gauge(name, help_text, value)
    else:
        gauge("last_failure_timestamp_seconds", "Time the last failed run finished.", outcome.finished)

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        if config.pushgateway_basic_auth:
            user, password = config.pushgateway_basic_auth
            return basic_auth_handler(url, method, timeout, headers, data, user, password)
        if config.pushgateway_authorization:
            headers = [*headers, ("Authorization", config.pushgateway_authorization)]
        return default_handler(url, method, timeout, headers, data)

    assert config.pushgateway_url
    pushadd_to_gateway(config.pushgateway_url, job=PUSH_JOB, registry=registry,
                       grouping_key=config.grouping_key(), timeout=config.pushgateway_timeout_s, handler=handler)


def _push_with_retries(config: MonitorConfig, outcome: Outcome) -> bool:
    assert config.pushgateway_url
    error = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            push_metrics(config, outcome)
            return True
        except Exception as exc:  # noqa: BLE001 - a failed push is a warning, whatever it was
            error = clean_text(str(exc))
        if attempt < ATTEMPTS:
            time.sleep(RETRY_PAUSE_S * attempt)
    event(get_logger(), "pushing metrics to the Pushgateway failed; the run's outcome is unchanged",
          level=logging.WARNING, target=where(config.pushgateway_url), error=error, attempts=ATTEMPTS)
    return False


# --------------------------------------------------------------------------- the monitor
class Monitor:
    """The notifications of one run: :meth:`start` when it begins, :meth:`finish` when
    it ends. Neither raises."""

    def __init__(self, config: MonitorConfig, clock: Callable[[], float] = time.time,
                 sender: Sender = _send) -> None:
        self.config = config
        self._clock = clock
        self._sender = sender
        self.started = clock()

    def start(self) -> None:
        self.started = self._clock()
        if self.config.ping_url:
            self._ping("start", None)

    def finish(self, exit_code: int, reason: str = "") -> Outcome:
        import urllib.request

        outcome = Outcome(kind=self.config.kind, exit_code=exit_code, reason=reason, started=self.started,
                          finished=self._clock(), facts=recorded())
        try:
            if self.config.pushgateway_url:
                _push_with_retries(self.config, outcome)
            if self.config.ping_url:
                self._ping("end", outcome)
            if self.config.webhook_url:
                body = json.dumps(webhook_payload(outcome, self.config)).encode()
                url = self.config.webhook_url
                _deliver("the webhook", url, lambda: urllib.request.Request(
                    url, data=body, method="POST",
                    headers={"Content-Type": "application/json", "User-Agent": "agent-bom-backup"}),
                    self.config.timeout_s, self._sender)
        except Exception as exc:  # noqa: BLE001 - a notification never fails the run
            event(get_logger(), "notifying failed; the run's outcome is unchanged", level=logging.WARNING,
                  error=clean_text(f"{type(exc).__name__}: {exc}"))
        return outcome

    def _ping(self, phase: str, outcome: Outcome | None) -> None:
        try:
            url = self.config.ping_url
            assert url
            request = ping_request(self.config.ping_style, url, phase, outcome)
            if request is not None:
                _deliver(f"the {phase} ping", url, lambda: request, self.config.timeout_s, self._sender)
        except Exception as exc:  # noqa: BLE001
            event(get_logger(), f"the {phase} ping failed; the run's outcome is unchanged", level=logging.WARNING,
                  error=clean_text(f"{type(exc).__name__}: {exc}"))


def after_commit(step: str, action: Callable[[], object]) -> None:
    """Run ``action``, a step after the backup was committed (its manifest written): a
    failure is a warning and never changes the exit code, so a complete backup is not
    retried (taken again) nor reported as failed."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - the backup is complete whatever went wrong here
        event(get_logger(), f"{step} failed after the backup was committed: the backup is complete and the "
              "run still succeeds (exit 0)", level=logging.WARNING, error=clean_text(f"{type(exc).__name__}: {exc}"))

"""Logging: one JSON object per line in the job, human text on a terminal.

Each JSON line carries ``level`` (lower case) and ``severity`` (Cloud Logging's name for
it: GKE files a stderr line without ``severity`` as ERROR).

Secrets never reach a log line: URLs are redacted where they are formatted, and a
filter scrubs every secret registered with the Redactor as a second line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

LOGGER_NAME = "agent_bom_backup"

#: libpq parameters that are secrets: never in argv, logs or reports
SECRET_PARAMS = ("password", "sslpassword", "oauth_client_secret")

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
_PASSWORD_PARAM = re.compile(r"(?i)\b(password|sslpassword|oauth_client_secret)=('[^']*'|[^\s&]*)")


def redact_url(text: str) -> str:
    """Remove credentials from any URL or conninfo string inside ``text``.

    ``postgresql://user:secret@host/db`` becomes ``postgresql://user:***@host/db``;
    ``password=secret`` becomes ``password=***``.
    """

    def _userinfo(match: re.Match[str]) -> str:
        userinfo = match.group("userinfo")
        user = userinfo.split(":", 1)[0]
        if ":" in userinfo:
            return f"{match.group('scheme')}{user}:***@"
        return f"{match.group('scheme')}{user}@"

    text = _URL_CREDENTIALS.sub(_userinfo, text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


_URL_USERINFO = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://(?P<userinfo>[^/?#]*)@")
# a quoted value, or everything up to the next ``key=`` (an unquoted value with a space
# is what libpq fails to parse, and then names its second half)
_KV_PASSWORD = re.compile(r"(?i)\b(?:password|sslpassword|oauth_client_secret)\s*=\s*('(?:[^'\\]|\\.)*'|.*?(?=\s+\w+\s*=|\s*$))")


def password_candidates(text: str) -> list[str]:
    """What could be a password in a database URL or conninfo, read as text: works when
    libpq cannot parse it (a raw ``%`` or space), which is exactly when its error message
    would echo the password. Whitespace-separated pieces are included, since libpq quotes
    a piece at a time."""
    found: list[str] = []
    match = _URL_USERINFO.match(text.strip())
    if match and ":" in match.group("userinfo"):
        found.append(match.group("userinfo").split(":", 1)[1])
    for value in _KV_PASSWORD.findall(text):
        found.append(value[1:-1] if value.startswith("'") and value.endswith("'") else value)
    pieces = [piece for candidate in found for piece in candidate.split() if piece != candidate]
    return [c for c in found + pieces if c]


@dataclass
class Redactor:
    """Holds the secret values of this run and scrubs them from text."""

    secrets: set[str] = field(default_factory=set)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3:
            self.secrets.add(secret)
            # percent-encoded forms appear in URLs
            from urllib.parse import quote

            self.secrets.add(quote(secret, safe=""))

    def scrub(self, text: str) -> str:
        text = redact_url(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.scrub(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = {
                k: self.redactor.scrub(v) if isinstance(v, str) else v for k, v in fields.items()
            }
        return True


#: Cloud Logging's LogSeverity names for the standard levels
_SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING", logging.ERROR: "ERROR",
             logging.CRITICAL: "CRITICAL"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            # Cloud Logging (GKE) files a line without ``severity`` as ERROR
            "severity": _SEVERITY.get(record.levelno, record.levelname),
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        line = f"{prefix}{record.getMessage()}" + (f"  [{extra}]" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(
    log_format: str = "auto",
    level: str = "info",
    redactor: Redactor | None = None,
    stream: IO[str] | None = None,
) -> logging.Logger:
    """Configure the package logger; ``auto`` means text on a TTY, JSON otherwise."""
    stream = stream or sys.stderr
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RedactingFilter(redactor or Redactor()))
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def scrub(text: str) -> str:
    """``text`` with every secret this run registered removed (the logging set-up's
    Redactor), for output that does not pass through the logger: reports, summaries."""
    for handler in get_logger().handlers:
        for candidate in handler.filters:
            if isinstance(candidate, _RedactingFilter):
                return candidate.redactor.scrub(text)
    return redact_url(text)


def event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``message`` with structured ``fields`` (JSON keys, or key=value in text)."""
    logger.log(level, message, extra={"fields": fields})


class Progress:
    """Progress of long work as a log line at most every ``interval_s`` seconds, so it
    never looks hung and never floods the log: :meth:`update` is cheap to call often (per
    chunk or part) and logs ``message`` with the latest fields when the interval passed."""

    def __init__(self, message: str, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.message = message
        self.interval_s = interval_s
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def update(self, **fields: object) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
        event(get_logger(), self.message, **fields)

"""Secrets never reach a log line: URL redaction, the run's Redactor, and the logger that
applies both to every message and field."""

import io
import json
import logging
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.log import LOGGER_NAME, Redactor, event, password_candidates, redact_url, scrub, setup_logging

#: what a password in a URL's userinfo may hold without percent-encoding
URL_PASSWORD = st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,;=%", min_size=1, max_size=40)


@pytest.mark.parametrize(("text", "redacted"), [
    ("postgresql://agent_bom:s3cret@db:5432/agent_bom", "postgresql://agent_bom:***@db:5432/agent_bom"),
    ("postgresql://agent_bom@db/agent_bom", "postgresql://agent_bom@db/agent_bom"),
    ("cannot connect to postgres://u:p@h/d: refused", "cannot connect to postgres://u:***@h/d: refused"),
    ("https://key:secret@minio.example:9000/bucket", "https://key:***@minio.example:9000/bucket"),
    ("host=db password=s3cret dbname=x", "host=db password=*** dbname=x"),
    ("host=db PASSWORD='two words' dbname=x", "host=db PASSWORD=*** dbname=x"),
    ("sslpassword=keypass", "sslpassword=***"),
    ("s3://bucket/agent-bom/postgres/agent-bom-20261125T030000Z.dump", "s3://bucket/agent-bom/postgres/agent-bom-20261125T030000Z.dump"),
], ids=["url", "url-without-password", "inside-a-sentence", "https", "conninfo", "conninfo-quoted", "sslpassword",
        "s3-uri"])
def test_redact_url(text: str, redacted: str) -> None:
    assert redact_url(text) == redacted


@given(URL_PASSWORD)
def test_any_url_password_is_redacted(password: str) -> None:
    assert redact_url(f"postgresql://agent_bom:{password}@db:5432/agent_bom") == "postgresql://agent_bom:***@db:5432/agent_bom"


@pytest.mark.parametrize(("text", "candidates"), [
    ("postgresql://u:p%zz@h/d", ["p%zz"]),
    ("host=h password=two words dbname=d", ["two words", "two", "words"]),
    ("host=h password='quoted one' user=u", ["quoted one", "quoted", "one"]),
    ("postgresql://u@h/d", []),
], ids=["unparsable-percent", "unquoted-space", "quoted", "none"])
def test_password_candidates_read_the_text(text: str, candidates: list[str]) -> None:
    assert password_candidates(text) == candidates


def test_redactor_scrubs_the_secret_and_its_percent_encoding() -> None:
    redactor = Redactor()
    redactor.add("p@ss/word")
    assert redactor.scrub("raw p@ss/word, encoded p%40ss%2Fword") == "raw ***, encoded ***"


def test_redactor_ignores_secrets_too_short_to_scrub_safely() -> None:
    redactor = Redactor()
    redactor.add("ab")
    assert redactor.scrub("tables and backups") == "tables and backups"


def test_redactor_scrubs_the_longest_secret_first() -> None:
    redactor = Redactor()
    redactor.add("secret")
    redactor.add("secret-and-more")
    assert redactor.scrub("x secret-and-more y") == "x *** y"


@pytest.fixture
def json_log() -> io.StringIO:
    """The package logger writing JSON lines to a buffer with a Redactor holding one
    secret; the logger's previous handlers come back afterwards."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    stream = io.StringIO()
    redactor = Redactor()
    redactor.add("hunter2-secret")
    setup_logging("json", "info", redactor, stream=stream)
    yield stream
    logger.handlers[:], logger.level, logger.propagate = saved


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_logged_message_is_scrubbed(json_log: io.StringIO) -> None:
    event(logging.getLogger(LOGGER_NAME), "connecting with hunter2-secret to postgresql://u:pw@h/d")
    assert _lines(json_log)[0]["message"] == "connecting with *** to postgresql://u:***@h/d"


def test_logged_fields_are_scrubbed(json_log: io.StringIO) -> None:
    event(logging.getLogger(LOGGER_NAME), "failed", error="password=hunter2-secret rejected")
    assert _lines(json_log)[0]["error"] == "password=*** rejected"


def test_logged_fields_that_are_not_text_keep_their_type(json_log: io.StringIO) -> None:
    event(logging.getLogger(LOGGER_NAME), "retrying", attempts=3)
    assert _lines(json_log)[0]["attempts"] == 3


def test_log_line_carries_its_level(json_log: io.StringIO) -> None:
    event(logging.getLogger(LOGGER_NAME), "careful", level=logging.WARNING)
    assert _lines(json_log)[0]["level"] == "warning"


@pytest.mark.parametrize(("level", "severity"), [(logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"),
                                                (logging.WARNING, "WARNING"), (logging.ERROR, "ERROR")],
                         ids=["debug", "info", "warning", "error"])
def test_log_line_carries_cloud_logging_severity(json_log: io.StringIO, level: int, severity: str) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG)
    event(logging.getLogger(LOGGER_NAME), "something", level=level)
    assert _lines(json_log)[0]["severity"] == severity


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_human_text_on_a_terminal() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    stream = _Tty()
    try:
        setup_logging("auto", "info", Redactor(), stream=stream)
        event(logger, "careful", level=logging.WARNING, key="value")
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    assert stream.getvalue() == "warning: careful  [key=value]\n"


def test_scrub_uses_the_run_s_redactor(json_log: io.StringIO) -> None:
    assert scrub("report for hunter2-secret") == "report for ***"

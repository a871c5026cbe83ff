"""Connection settings: the password never reaches a tool's argv; timeouts are overridden."""

import stat
from pathlib import Path

import pytest

from agent_bom_backup.errors import ConfigError
from agent_bom_backup.log import Redactor, redact_url
from agent_bom_backup.pgconn import ConnInfo, SessionSettings

PASSWORD = "p@ss:w/o?r#d%+ x"
URL = "postgresql://backup:p%40ss%3Aw%2Fo%3Fr%23d%25%2B%20x@db.internal:5433/agent_bom?sslmode=verify-full"


def test_percent_encoded_password_is_decoded() -> None:
    assert ConnInfo.parse(URL).password == PASSWORD


def test_conninfo_for_tools_carries_no_password() -> None:
    conninfo = ConnInfo.parse(URL).conninfo(SessionSettings(server_major=15))
    assert "p@ss" not in conninfo and "password" not in conninfo


def test_tool_env_carries_the_password() -> None:
    assert ConnInfo.parse(URL).tool_env({})["PGPASSWORD"] == PASSWORD


def test_tool_env_drops_the_url_variables() -> None:
    env = ConnInfo.parse(URL).tool_env({"AGENT_BOM_POSTGRES_URL": URL, "PGOPTIONS": "-c x=y"})
    assert "AGENT_BOM_POSTGRES_URL" not in env and "PGOPTIONS" not in env


def test_display_has_no_password() -> None:
    assert ConnInfo.parse(URL).display() == "postgresql://backup@db.internal:5433/agent_bom"


def test_user_options_are_kept_after_ours() -> None:
    conninfo = ConnInfo.parse(URL + "&options=-c%20search_path%3Dapp").conninfo(SessionSettings(server_major=15))
    assert "search_path=app" in conninfo and conninfo.index("statement_timeout") < conninfo.index("search_path")


@pytest.mark.parametrize(
    ("major", "present", "absent"),
    [
        (13, ["statement_timeout=0", "lock_timeout=", "idle_in_transaction_session_timeout=0"], ["idle_session_timeout"]),
        (15, ["idle_session_timeout=0"], ["transaction_timeout"]),
        (17, ["idle_session_timeout=0", "transaction_timeout=0"], []),
    ],
    ids=["pg13", "pg15", "pg17"],
)
def test_session_options_match_the_server_major(major: int, present: list[str], absent: list[str]) -> None:
    options = SessionSettings(server_major=major).options()
    assert all(p in options for p in present) and not any(a in options for a in absent)


def test_row_security_is_off_unless_enabled() -> None:
    assert "row_security=off" in SessionSettings(server_major=15).options()


def test_lock_wait_is_bounded() -> None:
    assert "lock_timeout=120000" in SessionSettings(server_major=15, lock_timeout_ms=120000).options()


@pytest.mark.parametrize("url", ["", "   ", "postgresql://host:notaport/db?x"], ids=["empty", "blank", "bad-port"])
def test_invalid_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        ConnInfo.parse(url).conninfo()  # bad ports surface when libpq parses


def test_redact_url_hides_userinfo_password() -> None:
    assert redact_url(f"cannot reach {URL}") == (
        "cannot reach postgresql://backup:***@db.internal:5433/agent_bom?sslmode=verify-full"
    )


def test_redact_url_hides_conninfo_password() -> None:
    assert redact_url("host=x password=hunter2 user=y") == "host=x password=*** user=y"


def test_redactor_scrubs_registered_secret_in_any_form() -> None:
    redactor = Redactor()
    redactor.add(PASSWORD)
    assert PASSWORD not in redactor.scrub(f"oops {PASSWORD} and {URL}")


def test_every_connection_asks_for_tcp_keepalives() -> None:
    conninfo = ConnInfo.parse(URL).conninfo(SessionSettings(server_major=15))
    assert "keepalives=1" in conninfo and "keepalives_idle=30" in conninfo


def test_keepalives_in_the_url_win() -> None:
    assert "keepalives_idle=5" in ConnInfo.parse(URL + "&keepalives_idle=5").conninfo()


def test_every_session_reads_dates_in_iso_style() -> None:
    assert "DateStyle=ISO,\\ MDY" in SessionSettings(server_major=15).options()


def test_inspection_sessions_pin_search_path_and_time_zone() -> None:
    options = SessionSettings(server_major=15).inspecting().options()
    assert "search_path=pg_catalog" in options and "TimeZone=UTC" in options


@pytest.mark.parametrize("url", [
    "postgresql://u:Secr%zzet@h/db",
    "postgresql://u:Secr et@h/db",
    "host=h password=pw Secret user=u",
], ids=["raw-percent", "raw-space", "conninfo-space"])
def test_unparsable_url_errors_never_quote_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnInfo.parse(url)
    assert "Secr" not in str(caught.value) and "Secret" not in str(caught.value)


@pytest.mark.parametrize(("text", "found"), [
    ("postgresql://u:p%zz@h/db", ["p%zz"]),
    ("postgresql://u:a@b@h/db", ["a@b"]),
    ("postgresql://u@h/db", []),
    ("host=h password='x y' user=u", ["x y", "x", "y"]),
])
def test_password_candidates_read_unparsable_urls(text: str, found: list[str]) -> None:
    from agent_bom_backup.log import password_candidates

    assert password_candidates(text) == found


SSL_URL = URL + "&sslpassword=KeyPass%20phrase1"


def test_sslpassword_is_kept_out_of_the_tool_conninfo() -> None:
    conninfo = ConnInfo.parse(SSL_URL).tool_conninfo(SessionSettings(server_major=15))
    assert "KeyPass" not in conninfo and "service=agent-bom-backup" in conninfo


def test_sslpassword_reaches_tools_through_a_private_service_file() -> None:
    env = ConnInfo.parse(SSL_URL).tool_env({})
    path = Path(env["PGSERVICEFILE"])
    assert (path.read_text(), stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode)) == (
        "[agent-bom-backup]\nsslpassword=KeyPass phrase1\n", 0o600, 0o700)


def test_tool_conninfo_without_other_secrets_names_no_service() -> None:
    assert "service=" not in ConnInfo.parse(URL).tool_conninfo()


def test_sslpassword_with_a_service_is_refused() -> None:
    with pytest.raises(ConfigError, match="names both a service and sslpassword"):
        ConnInfo.parse("postgresql://u@h/db?service=prod&sslpassword=x")


def test_sslpassword_is_redacted() -> None:
    assert "KeyPass" not in redact_url("host=h sslpassword=KeyPass user=u")

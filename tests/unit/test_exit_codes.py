"""One exit-code table (errors.py), and the CLI's path from an exception to that code:
one JSON error line, then the exit. Run in-process with click's CliRunner; every case
fails before any server would be needed."""

import json
import logging
import signal

import pytest
from click.testing import CliRunner, Result

from agent_bom_backup import catalog, cli, errors
from agent_bom_backup.errors import EXIT_CODE_MEANINGS, BackupError, ChangedError, ExitCode

ERRORS = {
    errors.ConfigError: ExitCode.CONFIG,
    errors.PreflightError: ExitCode.PREFLIGHT,
    errors.DumpError: ExitCode.DUMP,
    errors.StorageError: ExitCode.STORAGE,
    errors.VerifyError: ExitCode.VERIFY,
    errors.RefusedError: ExitCode.REFUSED,
    errors.RestoreError: ExitCode.RESTORE,
    errors.Interrupted: ExitCode.INTERRUPTED,
}


def test_exit_codes_are_distinct() -> None:
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda c: c.name)
def test_every_exit_code_has_a_documented_meaning(code: ExitCode) -> None:
    assert EXIT_CODE_MEANINGS.get(code)


@pytest.mark.parametrize(("error", "code"), list(ERRORS.items()), ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_error_carries_its_exit_code(error: type[BackupError], code: ExitCode) -> None:
    assert error("x").exit_code == code


def test_a_usage_error_is_click_s_2() -> None:
    assert ExitCode.USAGE == 2


def test_the_hint_follows_the_message_in_parentheses() -> None:
    assert str(errors.ConfigError("no bucket configured", hint="set --bucket")) == "no bucket configured (set --bucket)"


def test_changed_error_says_what_changed_and_how_to_go_back() -> None:
    error = ChangedError(errors.VerifyError("rows differ"), changes=["dropped schema public", "restored"],
                         recovery="pg_restore the safety dump")
    assert str(error) == ("failed after changing the target: rows differ; changed: dropped schema public; restored; "
                          "to go back: pg_restore the safety dump")


def test_changed_error_exits_11_whatever_its_cause() -> None:
    assert ChangedError(errors.StorageError("x"), changes=[], recovery="").exit_code == ExitCode.CHANGED


# ------------------------------------------------------------------ the CLI's error handler
@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):
    """Invoke the CLI in-process with only the given environment (no AGENT_BOM_* from the
    caller); the signal handlers and logger it installs are put back afterwards."""
    for name in ("AGENT_BOM_POSTGRES_URL", "AGENT_BOM_RESTORE_POSTGRES_URL", "AGENT_BOM_BACKUP_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    logger = logging.getLogger("agent_bom_backup")
    saved = logger.handlers[:]

    def invoke(*args: str, **env: str) -> Result:
        return CliRunner().invoke(cli.main, list(args), env={"AGENT_BOM_BACKUP_LOG_FORMAT": "json", **env})

    yield invoke
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    logger.handlers[:] = saved


def _error_lines(result: Result) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line["level"] == "error"]


def test_backup_without_a_database_url_is_a_configuration_error(run) -> None:
    assert run("backup", "--bucket", "b").exit_code == ExitCode.CONFIG


def test_the_error_is_one_json_line_naming_what_is_missing(run) -> None:
    result = run("backup", "--bucket", "b")
    assert [line["message"] for line in _error_lines(result)] == [
        "AGENT_BOM_POSTGRES_URL is not set (the chart sets it from the database Secret)"]


def test_the_error_line_carries_the_exit_code(run) -> None:
    (line,) = _error_lines(run("backup", "--bucket", "b"))
    assert (line["exit_code"], line["error"]) == (3, "ConfigError")


def test_a_bad_part_size_is_a_configuration_error_before_anything_runs(run) -> None:
    result = run("backup", "--bucket", "b", AGENT_BOM_POSTGRES_URL="postgresql://u@127.0.0.1:1/d",
                 AGENT_BOM_BACKUP_PART_SIZE="abc")
    assert [line["message"] for line in _error_lines(result)] == [
        "--part-size: 'abc' is not a size (e.g. 8MiB) (use a whole number with a unit, e.g. 8MiB or 64MiB)"]


def test_restore_without_a_target_is_a_configuration_error(run) -> None:
    assert run("restore", "latest", "--bucket", "b").exit_code == ExitCode.CONFIG


@pytest.mark.parametrize("command", ["restore", "verify"])
def test_latest_without_a_bucket_is_a_configuration_error(run, command: str) -> None:
    result = run(command, "latest", AGENT_BOM_RESTORE_POSTGRES_URL="postgresql://u@127.0.0.1:1/d")
    assert [line["message"] for line in _error_lines(result)] == [
        "'latest' needs a bucket (set --bucket / AGENT_BOM_BACKUP_BUCKET, or pass an s3:// URI)"]


def test_list_without_a_bucket_is_a_configuration_error(run) -> None:
    assert run("list").exit_code == ExitCode.CONFIG


def test_a_bad_duration_is_a_usage_error(run) -> None:
    assert run("check", "--bucket", "b", "--max-age", "soon").exit_code == ExitCode.USAGE


def test_an_out_of_range_option_is_a_usage_error(run) -> None:
    assert run("prune", "--bucket", "b", "--keep-days", "-1").exit_code == ExitCode.USAGE


@pytest.fixture
def bug(run, monkeypatch: pytest.MonkeyPatch) -> Result:
    """``list`` meeting a bug (an unexpected exception) inside the operation."""
    def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise KeyError("a bug")

    monkeypatch.setattr(catalog, "list_backups", broken)
    return run("list", "--bucket", "b")


def test_an_unexpected_exception_exits_1(bug: Result) -> None:
    assert bug.exit_code == ExitCode.INTERNAL


def test_an_unexpected_exception_is_one_error_line_naming_it(bug: Result) -> None:
    assert [line["message"] for line in _error_lines(bug)] == ["unexpected error: KeyError: 'a bug'"]


def test_an_unexpected_exception_prints_no_traceback_below_debug(bug: Result) -> None:
    assert "Traceback" not in bug.stderr


def test_an_interruption_exits_143(run, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> list[object]:
        raise errors.Interrupted("received SIGTERM: stopped before completion")

    monkeypatch.setattr(catalog, "list_backups", interrupted)
    assert run("list", "--bucket", "b").exit_code == ExitCode.INTERRUPTED


@pytest.fixture
def unparsable_target(run) -> Result:
    """A restore whose target URL libpq cannot parse: its error quotes the password's token."""
    return run("restore", "s3://b/p/agent-bom-20261125T030000Z.dump",
               AGENT_BOM_RESTORE_POSTGRES_URL="postgresql://u:hunter2%secret@127.0.0.1:notaport/d")


def test_an_unparsable_target_url_is_a_configuration_error(unparsable_target: Result) -> None:
    assert unparsable_target.exit_code == ExitCode.CONFIG


def test_the_password_of_an_unparsable_target_url_is_never_printed(unparsable_target: Result) -> None:
    assert "hunter2" not in unparsable_target.stderr + unparsable_target.stdout

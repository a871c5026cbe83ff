"""Pure decisions of the restore: judging pg_restore's exit, the passes of a restore by a
role that is not a superuser, and which owners such a role can give objects to."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.manifest import Manifest
from agent_bom_backup.restore import (
    INTERLEAVED,
    _owners_without_create,
    _schema_of,
    judge_pg_restore,
    restore_passes,
)
from agent_bom_backup.roles import parse_globals

TT = 'could not execute query: ERROR:  unrecognized configuration parameter "transaction_timeout"\n' \
     "Command was: SET transaction_timeout = 0;\n"


def _errors(*messages: str) -> str:
    return "".join(f"pg_restore: error: {m}" for m in messages)


def test_clean_exit_is_success() -> None:
    assert judge_pg_restore(0, "", tolerate_transaction_timeout=False).errors == []


TOLERATED = _errors(TT, TT) + "pg_restore: warning: errors ignored on restore: 1\n"


def test_transaction_timeout_errors_are_no_failure_when_asked() -> None:
    assert judge_pg_restore(1, TOLERATED, True).errors == []


def test_tolerated_transaction_timeout_errors_are_counted() -> None:
    assert judge_pg_restore(1, TOLERATED, True).tolerated == 2


def test_transaction_timeout_errors_fail_when_not_asked_to_tolerate_them() -> None:
    assert judge_pg_restore(1, TOLERATED, False).errors != []


# stderr that pg_restore prints on success (warnings, progress): no error message, no error count
QUIET = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200).filter(
    lambda t: "error: " not in t and "errors ignored on restore" not in t)


@given(QUIET, st.booleans())
def test_exit_0_without_an_error_message_is_success(stderr: str, tolerate: bool) -> None:
    assert judge_pg_restore(0, stderr, tolerate).errors == []


@given(st.integers(min_value=2, max_value=255), QUIET, st.booleans())
def test_an_exit_code_above_1_is_a_failure_whatever_was_printed(code: int, stderr: str, tolerate: bool) -> None:
    assert judge_pg_restore(code, stderr, tolerate).errors[0].startswith(f"pg_restore exited with code {code}")


@given(st.integers(min_value=1, max_value=64), st.text(max_size=200), st.booleans())
def test_a_signal_is_the_first_error_whatever_was_printed(signum: int, stderr: str, tolerate: bool) -> None:
    assert judge_pg_restore(-signum, stderr, tolerate).errors[0] == f"pg_restore was killed by signal {signum}"


def test_exit_1_without_any_error_message_is_a_failure() -> None:
    assert judge_pg_restore(1, "pg_restore: could not open input file\n", True).errors != []


def test_more_errors_ignored_than_messages_is_a_failure() -> None:
    assert judge_pg_restore(1, _errors(TT) + "pg_restore: warning: errors ignored on restore: 2\n", True).errors == [
        INTERLEAVED]


def test_a_signal_is_a_failure_even_with_nothing_printed() -> None:
    assert judge_pg_restore(-15, "", True).errors == ["pg_restore was killed by signal 15"]


def test_a_real_error_is_reported_first() -> None:
    stderr = _errors(TT, 'could not execute query: ERROR:  relation "t" already exists\nCommand was: CREATE TABLE t;\n')
    assert judge_pg_restore(1, stderr, True).errors == ['could not execute query: ERROR:  relation "t" already exists']


TOC = [
    "3405; 0 0 ACL - SCHEMA public pg_database_owner",
    "6; 2615 16385 SCHEMA - app app_owner",
    "216; 1259 16397 TABLE public api_keys agent_bom_owner",
    "3383; 0 16397 ROW SECURITY public api_keys agent_bom_owner",
    "3386; 3256 16454 POLICY public api_keys tenant_isolation agent_bom_owner",
    "3393; 0 16397 TABLE DATA public api_keys agent_bom_owner",
]


def test_a_superuser_restores_in_one_pass() -> None:
    assert restore_passes(TOC, phased=False) == [("restore", TOC)]


def test_other_roles_restore_schemas_first_and_row_security_last() -> None:
    assert [(name, [line.split(";")[0] for line in lines]) for name, lines in restore_passes(TOC, phased=True)] == [
        ("schemas and their privileges", ["3405", "6"]),
        ("objects and data", ["216", "3386", "3393"]),
        ("row-level security switched on", ["3383"]),
    ]


@pytest.mark.parametrize(("line", "schema"), [
    ("r public.audit_log agent_bom_owner", "public"),
    ('function "My Schema".f(integer, text) owner', '"My Schema"'),
    ("schema app app_owner", None),
])
def test_schema_of_an_owner_line(line: str, schema: str | None) -> None:
    assert _schema_of(line) == schema


def _manifest(owners: list[str], grants: list[str]) -> Manifest:
    manifest = Manifest.__new__(Manifest)
    manifest.schema_fingerprint = {"owners": owners, "grants": grants}
    return manifest


def test_owner_with_create_on_the_schema_is_fine() -> None:
    manifest = _manifest(["r public.t owner"], ["schema public owner CREATE"])
    assert _owners_without_create(manifest, None, "admin") == []


def test_owner_without_create_is_named() -> None:
    manifest = _manifest(["r public.t owner"], [])
    assert _owners_without_create(manifest, None, "admin") == ["owner owner has no CREATE on schema public"]


def test_owner_of_the_target_database_owns_public() -> None:
    assert _owners_without_create(_manifest(["r public.t owner"], []), None, "owner") == []


def test_create_through_a_stored_membership_counts() -> None:
    stored = parse_globals("CREATE ROLE owner;\nGRANT writers TO owner;\n").roles
    manifest = _manifest(["r public.t owner"], ["schema public writers CREATE"])
    assert _owners_without_create(manifest, stored, "admin") == []


def test_owner_of_the_schema_may_own_its_objects() -> None:
    manifest = _manifest(["schema app app_owner", "r app.t app_owner"], [])
    assert _owners_without_create(manifest, None, "admin") == []

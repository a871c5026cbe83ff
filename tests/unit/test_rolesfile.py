"""The roles object is data (issue 26, item 5): parsed with SQL's quoting, only what
pg_dumpall --globals-only --no-role-passwords of PostgreSQL 15 to 18 writes is accepted,
and anything else refuses the restore naming its line. The fixtures are real output of
pg_dumpall 15 and 18 against servers 15, 16, 17 and 18 (roles with settings, a comment
spanning lines, memberships with options, a parameter privilege, a tablespace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_bom_backup.errors import ExitCode
from agent_bom_backup.roles import Grantor, plan_roles
from agent_bom_backup.rolesfile import RolesFileError, parse_roles_file, reached_roles

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "roles").glob("*.sql"))
GOLDEN = sorted((Path(__file__).resolve().parents[1] / "golden").glob("*/*.roles.sql"))


@pytest.mark.parametrize("path", FIXTURES + GOLDEN, ids=lambda p: p.name)
def test_real_pg_dumpall_output_parses(path: Path) -> None:
    parsed = parse_roles_file(path.read_text())
    assert "postgres" in parsed.roles


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_a_comment_spanning_lines_is_one_literal(path: Path) -> None:
    comment = parse_roles_file(path.read_text()).roles["app_user"].comment
    assert comment == "line one\nit's line two -- not a comment; nor a statement"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_role_settings_keep_every_list_element(path: Path) -> None:
    settings = {s.parameter: s.values for s in parse_roles_file(path.read_text()).roles["app_user"].settings}
    assert settings == {"search_path": ("$user", "public", 'Odd "schema"'), "app.bypass_rls": ("0",)}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_memberships_and_their_options_are_read(path: Path) -> None:
    parsed = parse_roles_file(path.read_text())
    edges = {(m.role, m.member): m.admin for m in parsed.memberships}
    assert edges[("Tenant Reader", "app_user")] is True
    assert edges[("agent_bom_rls_maintenance", "agent_bom_maintenance")] is False


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_tablespace_statements_are_skipped_and_listed(path: Path) -> None:
    assert sum("tablespace" in s for s in parse_roles_file(path.read_text()).skipped) == 3


TAMPERED = [
    ("GRANT a TO b; CREATE ROLE backdoor LOGIN PASSWORD 'x';", "line 1"),
    ("CREATE ROLE r;\nALTER ROLE r WITH LOGIN PASSWORD 'md5abc';", "a password"),
    ("CREATE ROLE r;\nDROP ROLE postgres;", "line 2"),
    ("CREATE ROLE r;\nALTER ROLE r SET search_path TO public; SELECT 1;", "line 2"),
    ("CREATE ROLE r;\n\\! rm -rf /\n", "psql command"),
    ("CREATE ROLE r;\nALTER ROLE r SET work_mem TO E'\\x41';", "escape string"),
    ("CREATE ROLE r;\nCOMMENT ON ROLE r IS 'open", "unterminated"),
    ("CREATE ROLE r", "closing semicolon"),
    ("CREATE ROLE r;\nALTER ROLE r WITH LOGIN; ALTER ROLE r WITH SUPERUSER CREATEROLE", "closing semicolon"),
    ("CREATE ROLE r;\nGRANT r TO s WITH ADMIN OPTION, EVIL TRUE;", "line 2"),
    ("CREATE ROLE r;\nALTER ROLE r IN DATABASE d SET x TO (SELECT 1);", "line 2"),
]


@pytest.mark.parametrize(("text", "named"), TAMPERED, ids=[t[0][:40] for t in TAMPERED])
def test_anything_pg_dumpall_does_not_write_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(RolesFileError) as raised:
        parse_roles_file(text)
    assert named in raised.value.message
    assert raised.value.exit_code == ExitCode.REFUSED


def test_a_statement_hidden_after_a_grant_on_the_same_line_is_refused() -> None:
    text = "CREATE ROLE a;\nCREATE ROLE b;\nGRANT a TO b; CREATE ROLE backdoor LOGIN PASSWORD 'secret';\n"
    with pytest.raises(RolesFileError, match="line 3: unexpected text after the statement: CREATE ROLE backdoor"):
        parse_roles_file(text)


def test_a_semicolon_inside_a_literal_ends_nothing() -> None:
    parsed = parse_roles_file("CREATE ROLE r;\nCOMMENT ON ROLE r IS 'a; DROP ROLE postgres;';\n")
    assert parsed.roles["r"].comment == "a; DROP ROLE postgres;"


# ------------------------------------------------------------------ which roles the archive reaches
EDGES = [("Tenant Reader", "app_user"), ("agent_bom_rls_maintenance", "agent_bom_maintenance"),
         ("pg_read_all_data", "agent_bom_maintenance"), ("Tenant Reader", "platform_admin"),
         ("unrelated_group", "someone_else"), ("agent_bom_rls_maintenance", "other_member")]


def test_members_of_a_named_role_are_reached() -> None:
    assert "app_user" in reached_roles({"Tenant Reader"}, EDGES, set())


def test_groups_of_a_reached_role_are_reached() -> None:
    assert "agent_bom_rls_maintenance" in reached_roles({"agent_bom_maintenance"}, EDGES, set())


def test_predefined_privileged_and_unrelated_roles_are_not_reached() -> None:
    reached = reached_roles({"Tenant Reader", "agent_bom_maintenance"}, EDGES, {"platform_admin"})
    assert reached == {"Tenant Reader", "app_user", "agent_bom_maintenance", "agent_bom_rls_maintenance"}


# ------------------------------------------------------------------ what the restore runs
def _plan(major: int = 15, existing: frozenset[str] = frozenset()):
    parsed = parse_roles_file(FIXTURES[2].read_text())  # server 16, pg_dumpall 18
    missing = ["Tenant Reader", "agent_bom_maintenance", "agent_bom_rls_maintenance", "app_user"]
    missing = [m for m in missing if m not in existing]
    reached = {"Tenant Reader", "agent_bom_maintenance", "agent_bom_rls_maintenance", "app_user"}
    return plan_roles(missing, parsed, Grantor("admin", major, False, True), set(existing) | {"pg_read_all_data"}, [],
                      reached=reached, source_database="src", target_database="restored")


def test_statements_are_built_from_values_with_quoting() -> None:
    (app,) = [c for c in _plan().create if c.name == "app_user"]
    assert app.settings[:2] == ['ALTER ROLE "app_user" SET "search_path" TO \'$user\', \'public\', \'Odd "schema"\'',
                                'ALTER ROLE "app_user" SET "app.bypass_rls" TO \'0\'']
    assert app.comment == "COMMENT ON ROLE \"app_user\" IS 'line one\nit''s line two -- not a comment; nor a statement'"


def test_memberships_in_predefined_roles_are_skipped_and_listed() -> None:
    plan = _plan()
    assert not any("pg_read_all_data" in m.statement for m in plan.memberships)
    assert any("pg_read_all_data" in s and "predefined" in s for s in plan.skipped)


@pytest.mark.parametrize(("major", "statement"), [
    (15, 'GRANT "Tenant Reader" TO "app_user" WITH ADMIN OPTION'),
    (17, 'GRANT "Tenant Reader" TO "app_user" WITH ADMIN OPTION, INHERIT TRUE'),
])
def test_memberships_are_granted_as_the_target_major_spells_them(major: int, statement: str) -> None:
    assert statement in [m.statement for m in _plan(major).memberships]


def test_memberships_to_roles_the_platform_created_are_recreated() -> None:
    plan = _plan(existing=frozenset({"app_user"}))
    assert 'GRANT "Tenant Reader" TO "app_user" WITH ADMIN OPTION' in [m.statement for m in plan.memberships]


def test_a_membership_in_a_privileged_role_is_never_planned() -> None:
    parsed = parse_roles_file("CREATE ROLE boss;\nALTER ROLE boss WITH SUPERUSER;\nCREATE ROLE app;\n"
                              "GRANT boss TO app GRANTED BY postgres;\n")
    plan = plan_roles(["app"], parsed, Grantor("admin", 15, False, True), {"boss"}, [], reached={"app", "boss"})
    assert (plan.memberships, [s.split(":")[1].strip() for s in plan.skipped]) == ([], ["boss has SUPERUSER"])

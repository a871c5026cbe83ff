"""Role recreation from the stored roles object: what a restore role may grant, by
PostgreSQL major, and what is left out."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.roles import Grantor, UndefinedRolesError, parse_globals, plan_roles

GLOBALS = """
CREATE ROLE agent_bom_app;
ALTER ROLE agent_bom_app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE agent_bom_owner;
ALTER ROLE agent_bom_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "Ops Admin";
ALTER ROLE "Ops Admin" WITH SUPERUSER NOINHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS CONNECTION LIMIT 5;
ALTER ROLE agent_bom_app SET search_path TO 'public';
GRANT agent_bom_owner TO agent_bom_app GRANTED BY postgres;
GRANT pg_read_all_data TO agent_bom_app GRANTED BY postgres;
"""


def _stored():
    return parse_globals(GLOBALS).roles


def test_defaults_are_not_restored_as_attributes() -> None:
    assert _stored()["agent_bom_owner"].attribute_list == []


def test_non_default_attributes_are_kept_in_order() -> None:
    assert _stored()["Ops Admin"].attribute_list == [
        "SUPERUSER", "NOINHERIT", "CREATEROLE", "CREATEDB", "LOGIN", "REPLICATION", "BYPASSRLS", "CONNECTION LIMIT 5"]


def test_granted_by_is_not_run() -> None:
    plan = plan_roles(["agent_bom_app", "agent_bom_owner"], parse_globals(GLOBALS), Grantor("admin", 15, False, True),
                      set(), [])
    assert [m.statement for m in plan.memberships] == ['GRANT "agent_bom_owner" TO "agent_bom_app"']


@pytest.mark.parametrize(("major", "attribute", "allowed"), [
    (15, "SUPERUSER", False), (15, "REPLICATION", False), (15, "BYPASSRLS", False), (15, "CREATEDB", True),
    (17, "SUPERUSER", False), (17, "REPLICATION", False), (17, "BYPASSRLS", False), (17, "CREATEDB", False),
    (15, "LOGIN", True), (17, "CONNECTION LIMIT 5", True),
], ids=lambda v: str(v))
def test_createrole_admin_without_other_attributes_may_grant(major: int, attribute: str, allowed: bool) -> None:
    assert Grantor("admin", major, superuser=False, createrole=True).may_grant(attribute) is allowed


@pytest.mark.parametrize("attribute", ["CREATEDB", "BYPASSRLS", "REPLICATION"])
def test_pg16_admin_may_grant_attributes_it_holds(attribute: str) -> None:
    grantor = Grantor("admin", 16, superuser=False, createrole=True, createdb=True, bypassrls=True, replication=True)
    assert grantor.may_grant(attribute)


def test_superuser_may_grant_everything() -> None:
    assert Grantor("postgres", 15, superuser=True, createrole=True).may_grant("SUPERUSER")


def test_plan_drops_what_the_admin_may_not_grant() -> None:
    plan = plan_roles(["Ops Admin"], _stored(), Grantor("admin", 15, False, True), set(), [])
    assert plan.dropped == {"Ops Admin": ["SUPERUSER", "REPLICATION", "BYPASSRLS"]}


def test_plan_recreates_memberships_in_roles_that_exist_then() -> None:
    plan = plan_roles(["agent_bom_app", "agent_bom_owner"], parse_globals(GLOBALS), Grantor("admin", 15, False, True),
                      {"pg_read_all_data"}, [])
    # never a membership in a predefined role: listed as skipped
    assert [m.statement for m in plan.memberships] == ['GRANT "agent_bom_owner" TO "agent_bom_app"']
    assert any("pg_read_all_data" in s for s in plan.skipped)


def test_plan_skips_memberships_in_roles_that_will_not_exist() -> None:
    plan = plan_roles(["agent_bom_app"], _stored(), Grantor("admin", 15, False, True), set(), [])
    assert plan.memberships == []


def test_plan_refuses_roles_the_object_does_not_define() -> None:
    with pytest.raises(UndefinedRolesError, match="does not define ghost"):
        plan_roles(["ghost"], _stored(), Grantor("admin", 15, False, True), set(), [])


@pytest.mark.parametrize(("major", "statement"), [
    (15, 'GRANT "agent_bom_owner" TO "admin"'),
    (16, 'GRANT "agent_bom_owner" TO "admin" WITH INHERIT TRUE, SET TRUE'),
])
def test_self_grant_matches_the_major(major: int, statement: str) -> None:
    assert Grantor("admin", major, False, True).self_grant("agent_bom_owner") == statement


# ------------------------------------------------------------------ parse_globals on any role name
def _quote_ident(name: str) -> str:
    """As pg_dumpall writes a name: bare when it is a plain lower-case identifier, else quoted."""
    import re

    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


ROLE_NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda n: n.strip() == n and "\n" not in n)


def _globals(member: str, role: str) -> str:
    return (f"CREATE ROLE {_quote_ident(member)};\n"
            f"ALTER ROLE {_quote_ident(member)} WITH NOSUPERUSER INHERIT LOGIN;\n"
            f"GRANT {_quote_ident(role)} TO {_quote_ident(member)} GRANTED BY postgres;\n")


@given(ROLE_NAMES, ROLE_NAMES)
def test_any_role_name_reads_back_with_its_attributes(member: str, role: str) -> None:
    assert parse_globals(_globals(member, role)).roles[member].attribute_list == ["LOGIN"]


@given(ROLE_NAMES, ROLE_NAMES)
def test_any_membership_reads_back(member: str, role: str) -> None:
    assert parse_globals(_globals(member, role)).roles[member].member_of == [role]


@given(st.lists(st.sampled_from(["SUPERUSER", "CREATEDB", "CREATEROLE", "LOGIN", "REPLICATION", "BYPASSRLS",
                                 "NOINHERIT", "CONNECTION LIMIT 3"]), unique=True))
def test_exactly_the_attributes_that_differ_from_the_defaults_are_kept(attributes: list[str]) -> None:
    defaults = "NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOLOGIN NOREPLICATION NOBYPASSRLS"
    text = f"CREATE ROLE r;\nALTER ROLE r WITH {' '.join(attributes) or defaults};\n"
    assert parse_globals(text).roles["r"].attribute_list == attributes


def test_a_role_set_in_a_database_keeps_its_setting() -> None:
    text = 'CREATE ROLE r;\nALTER ROLE r IN DATABASE "agent bom" SET work_mem TO \'64MB\';\n'
    plan = plan_roles(["r"], parse_globals(text), Grantor("admin", 15, False, True), set(), [],
                      source_database="agent bom", target_database="restored")
    assert plan.create[0].settings == ['ALTER ROLE "r" IN DATABASE "restored" SET "work_mem" TO \'64MB\'']

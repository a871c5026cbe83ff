"""Database-level state (issue 26, item 3): the fingerprint lines and the statements that
make each true or false, names quoted whatever they hold."""

from __future__ import annotations

import pytest

from agent_bom_backup.dbstate import ADMINISTRATOR, DatabaseRecord, statement_for
from agent_bom_backup.manifest import Manifest

RECORD = DatabaseRecord(
    name="agent_bom", owner="agent bom", connection_limit=50, comment="it's ours",
    acl=["PUBLIC CONNECT", "app user CONNECT", "ops CREATE grantable"], settings=["search_path=public"],
    role_settings={"app user": ["work_mem=8MB"]}, reached_roles=["Tenant Reader", "app user"],
    memberships=['"Tenant Reader" <- "app user"'])


def test_fingerprint_names_every_recorded_item() -> None:
    assert RECORD.fingerprint()["database"] == sorted([
        'owner "agent bom"', "connection limit 50", "comment it's ours", "acl PUBLIC CONNECT",
        'acl "app user" CONNECT', 'acl "ops" CREATE grantable', "setting search_path=public",
        'role setting "app user" work_mem=8MB'])


@pytest.mark.parametrize(("line", "missing", "statement"), [
    ('owner "agent bom"', True, 'ALTER DATABASE "restored" OWNER TO "agent bom"'),
    ("connection limit 50", True, 'ALTER DATABASE "restored" CONNECTION LIMIT 50'),
    ("comment it's ours", True, "COMMENT ON DATABASE \"restored\" IS 'it''s ours'"),
    ('acl "app user" CONNECT', True, 'GRANT CONNECT ON DATABASE "restored" TO "app user"'),
    ('acl "ops" CREATE grantable', True, 'GRANT CREATE ON DATABASE "restored" TO "ops" WITH GRANT OPTION'),
    ("acl PUBLIC TEMPORARY", False, 'REVOKE TEMPORARY ON DATABASE "restored" FROM PUBLIC'),
    ("setting search_path=public", True, 'ALTER DATABASE "restored" SET "search_path" TO \'public\''),
    ('setting search_path="$user", public', True, 'ALTER DATABASE "restored" SET "search_path" TO "$user", public'),
    ("setting work_mem=8MB", False, 'ALTER DATABASE "restored" RESET "work_mem"'),
    ('role setting "app user" work_mem=8MB', True,
     'ALTER ROLE "app user" IN DATABASE "restored" SET "work_mem" TO \'8MB\''),
])
def test_each_line_has_the_statement_a_platform_admin_runs(line: str, missing: bool, statement: str) -> None:
    assert statement_for("database", line, "restored", missing=missing) == statement


def test_membership_lines_become_grants() -> None:
    assert statement_for("memberships", '"Tenant Reader" <- "app user" admin', "x") == \
        'GRANT "Tenant Reader" TO "app user" WITH ADMIN OPTION'


def test_an_administrator_owned_database_names_no_role() -> None:
    record = DatabaseRecord(name="d", owner=ADMINISTRATOR)
    assert (record.roles(), record.fingerprint()["database"][1]) == (set(), "owner (administrator)")


def test_the_record_survives_the_manifest_round_trip(manifest_v3_json: str) -> None:
    assert Manifest.from_json(manifest_v3_json).database == RECORD


@pytest.fixture
def manifest_v3_json() -> str:
    import json
    from dataclasses import asdict
    from pathlib import Path

    golden = next((Path(__file__).resolve().parents[1] / "golden").glob("v3-*/*.manifest.json"))
    data = json.loads(golden.read_text())
    data["database"] = asdict(RECORD)
    return json.dumps(data)


def test_formats_1_and_2_read_without_a_database_record() -> None:
    from pathlib import Path

    for path in (Path(__file__).resolve().parents[1] / "golden").glob("v[12]-*/*.manifest.json"):
        assert Manifest.from_json(path.read_text()).database is None

"""The restore report says what came back and what did not (issue 26, item 3): an
incomplete restore lists each item with its statement, every statement run is in the
summary, and what the roles object holds but the restore never runs is listed."""

from __future__ import annotations

import json

from agent_bom_backup.report import INCOMPLETE, VERIFIED, RestoreReport

ITEM = {"item": 'memberships: "Tenant Reader" <- "app_user"', "statement": 'GRANT "Tenant Reader" TO "app_user"',
        "reason": 'permission denied to grant role "Tenant Reader"'}


def _report(**fields) -> RestoreReport:
    report = RestoreReport(backup_uri="s3://b/k.dump", operator="op", approval=None,
                           started_at="2026-12-07T00:00:00+00:00", **fields)
    return report


def test_an_incomplete_summary_lists_each_item_with_its_statement() -> None:
    report = _report(not_restored=[ITEM])
    report.finish(INCOMPLETE, error="restore incomplete", exit_code=12)
    summary = report.summary()
    assert "status:            INCOMPLETE" in summary
    assert f"  - {ITEM['item']}: {ITEM['statement']};  ({ITEM['reason']})" in summary


def test_the_json_report_carries_the_items() -> None:
    report = _report(not_restored=[ITEM])
    report.finish(INCOMPLETE, exit_code=12)
    assert json.loads(report.to_json())["not_restored"] == [ITEM]


def test_every_statement_run_and_every_skipped_line_is_in_the_summary() -> None:
    report = _report(role_statements=['CREATE ROLE "app_user" WITH LOGIN'],
                     database_statements=['REVOKE CONNECT ON DATABASE "d" FROM PUBLIC'],
                     roles_skipped=['GRANT "pg_read_all_data" TO "app_user" (roles object line 9): a predefined role'])
    report.finish(VERIFIED, exit_code=0)
    summary = report.summary()
    assert 'role statement:    CREATE ROLE "app_user" WITH LOGIN' in summary
    assert 'database:          REVOKE CONNECT ON DATABASE "d" FROM PUBLIC' in summary
    assert "roles skipped:     GRANT \"pg_read_all_data\"" in summary


def test_a_verified_summary_has_no_not_restored_section() -> None:
    report = _report()
    report.finish(VERIFIED, exit_code=0)
    assert "NOT RESTORED" not in report.summary()

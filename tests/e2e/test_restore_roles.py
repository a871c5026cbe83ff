"""Restore into a second, fresh PostgreSQL cluster that lacks the roles the backup names:
refused with the missing roles named and nothing touched; with --create-missing-roles the
roles, the RLS policies naming them, the grants and FORCE ROW LEVEL SECURITY all come back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import helpers
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.s3server import MotoServer

ROLES = ("agent_bom_app", "agent_bom_owner", "agent_bom_readonly")


@dataclass(frozen=True)
class FreshRestore:
    cluster: PgCluster
    database: str
    state_before: dict[str, Any]
    refused: cli.Run
    state_after_refusal: dict[str, Any]
    restored: cli.Run
    report: dict[str, Any]


@pytest.fixture(scope="module")
def fresh(pg_cluster_factory: PgClusterPool, s3: MotoServer, backup15: cli.Backup, tmp_root: Path) -> FreshRestore:
    cluster = pg_cluster_factory(15, fresh=True)
    database = "agent_bom"
    cluster.create_database(database)
    env = cli.job_env(s3.endpoint_url, backup15.bucket)
    url = cluster.superuser_url(database)
    before = helpers.database_state(cluster, database)
    refused = cli.restore(env, backup15.uri, url)
    after_refusal = helpers.database_state(cluster, database)
    report = tmp_root / postgres.unique_name("fresh-report")
    restored = cli.restore(env, backup15.uri, url, "--create-missing-roles", "--report", str(report))
    assert restored.returncode == 0, str(restored)
    return FreshRestore(cluster, database, before, refused, after_refusal, restored, json.loads(report.read_text()))


def _query(fresh: FreshRestore, query: str) -> list[tuple[Any, ...]]:
    return fresh.cluster.run_sql(query, fresh.database)


def test_missing_roles_are_refused_with_the_refusal_code(fresh: FreshRestore) -> None:
    assert fresh.refused.returncode == 8, str(fresh.refused)


def test_missing_roles_refusal_names_every_missing_role(fresh: FreshRestore) -> None:
    assert "lacks roles the backup names: " + ", ".join(ROLES) in fresh.refused.error_message


def test_missing_roles_refusal_leaves_the_target_untouched(fresh: FreshRestore) -> None:
    assert fresh.state_after_refusal == fresh.state_before


def test_created_roles_are_reported(fresh: FreshRestore) -> None:
    assert sorted(fresh.report["roles_created"]) == list(ROLES)


def test_login_role_is_reported_as_needing_a_password(fresh: FreshRestore) -> None:
    assert fresh.report["roles_needing_password"] == ["agent_bom_app"]
    assert "SET A PASSWORD for login roles: agent_bom_app" in fresh.restored.stdout


@pytest.mark.parametrize(("role", "can_login"), [("agent_bom_app", True), ("agent_bom_owner", False),
                                                 ("agent_bom_readonly", False)])
def test_created_role_keeps_its_login_attribute(fresh: FreshRestore, role: str, can_login: bool) -> None:
    assert _query(fresh, f"SELECT rolcanlogin, rolpassword IS NULL FROM pg_authid WHERE rolname = '{role}'") == [
        (can_login, True)]


def test_role_membership_comes_back(fresh: FreshRestore) -> None:
    assert _query(fresh, "SELECT pg_has_role('agent_bom_app', 'agent_bom_readonly', 'MEMBER')") == [(True,)]


def test_policies_come_back_with_their_roles(fresh: FreshRestore) -> None:
    rows = _query(fresh, "SELECT tablename || '.' || policyname, roles::text FROM pg_policies ORDER BY 1")
    assert rows == [
        ("api_keys.tenant_isolation", "{agent_bom_app}"),
        ("audit_log.owner_all", "{agent_bom_owner}"),
        ("audit_log.readonly_all", "{agent_bom_readonly}"),
        ("audit_log.tenant_isolation", "{agent_bom_app}"),
        ("scan_jobs.tenant_isolation", "{agent_bom_app}"),
    ]


@pytest.mark.parametrize(("table", "privilege"), [("audit_log", "SELECT"), ("audit_log", "INSERT"),
                                                  ("api_keys", "UPDATE"), ("settings", "DELETE")])
def test_application_grants_come_back(fresh: FreshRestore, table: str, privilege: str) -> None:
    assert _query(fresh, f"SELECT has_table_privilege('agent_bom_app', 'public.{table}', '{privilege}')") == [(True,)]


def test_owners_come_back(fresh: FreshRestore) -> None:
    assert _query(fresh, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'") == [
        ("agent_bom_owner",)]


def test_force_row_level_security_comes_back(fresh: FreshRestore) -> None:
    assert _query(fresh, "SELECT relname FROM pg_class WHERE relforcerowsecurity") == [("audit_log",)]


def test_tenant_isolation_policy_filters_the_application_role(fresh: FreshRestore) -> None:
    rows = _query(fresh, "BEGIN; SET LOCAL ROLE agent_bom_app; SET LOCAL app.team_id = 'team-bravo'; "
                         "SELECT DISTINCT team_id FROM api_keys; ")
    assert rows == [("team-bravo",)]


def test_fresh_restore_is_verified(fresh: FreshRestore) -> None:
    assert (fresh.report["status"], fresh.report["verification"]["fingerprint_diff"]) == ("verified", {})

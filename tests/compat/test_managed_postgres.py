"""Managed PostgreSQL realities (RDS, Cloud SQL, Azure): a non-superuser backup role,
role-level timeouts set by a DBA, read-only defaults, TLS with a private CA,
passwords full of URL-reserved characters, and backups taken from a hot standby."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster, PgClusterPool, wait_for_replay
from devstack.s3server import MotoServer
from devstack.seed import SeedSpec

RESERVED_PASSWORD = "p@ss:w/o?r#d%+ x&y=z"
TINY_TIMEOUTS = {
    "statement_timeout": "1ms",
    "lock_timeout": "1ms",
    "idle_in_transaction_session_timeout": "1ms",
    "idle_session_timeout": "1ms",
}


def make_role(pg: PgCluster, attributes: str = "LOGIN", password: str = "s3cret-pass") -> str:
    name = postgres.unique_name("bk")
    literal = password.replace("'", "''")
    pg.run_sql(f"CREATE ROLE {name} {attributes} PASSWORD '{literal}'")
    return name


def role_url(pg: PgCluster, role: str, database: str, password: str = "s3cret-pass", **params: str) -> str:
    return pg.url(database, role, password, **params)


def backup_as_new_role(pg: PgCluster, database: str, bucket: str, s3: MotoServer, attributes: str,
                       *setup: str) -> tuple[str, cli.Run]:
    """A backup of ``database`` by a new role with ``attributes``, after the ``setup``
    statements (``{role}`` in them is the role's name); the role and the run."""
    role = make_role(pg, attributes)
    for statement in setup:
        pg.run_sql(statement.format(role=role))
    return role, cli.backup(cli.job_env(s3.endpoint_url, bucket, role_url(pg, role, database)))


def manifest_of(s3: MotoServer, bucket: str, uri: str) -> dict[str, object]:
    return buckets.read_manifest(s3.client(), bucket, uri.split(f"s3://{bucket}/", 1)[1])


@pytest.fixture
def plain_db(pg15: PgCluster) -> Iterator[str]:
    """Tenant tables without row-level security."""
    name = postgres.new_database(pg15, "plain")
    pg15.run_sql(
        "CREATE TABLE audit_log (id bigserial PRIMARY KEY, team_id text NOT NULL, payload jsonb);"
        "INSERT INTO audit_log (team_id, payload) SELECT 'team-' || (g % 3), '{}' FROM generate_series(1, 300) g;",
        dbname=name,
    )
    yield name
    pg15.run_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_read_all_data_role_backs_up_tables_without_rls(
    pg15: PgCluster, plain_db: str, bucket: str, s3: MotoServer
) -> None:
    role, result = backup_as_new_role(pg15, plain_db, bucket, s3, "LOGIN NOSUPERUSER NOBYPASSRLS",
                                      "GRANT pg_read_all_data TO {role}")
    assert result.returncode == 0, result.stderr
    assert manifest_of(s3, bucket, result.uri)["source"]["backup_role"] == role  # type: ignore[index]


def test_role_filtered_by_rls_fails_clearly(pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer) -> None:
    _, result = backup_as_new_role(pg15, seeded_db, bucket, s3, "LOGIN NOSUPERUSER NOBYPASSRLS",
                                   "GRANT pg_read_all_data TO {role}")
    assert result.returncode == 4 and "would not see every tenant's rows" in result.stderr


def test_role_level_tiny_timeouts_do_not_break_backup(
    pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer
) -> None:
    _, result = backup_as_new_role(pg15, seeded_db, bucket, s3, "LOGIN SUPERUSER",
                                   *(f"ALTER ROLE {{role}} SET {name} = '{value}'" for name, value in TINY_TIMEOUTS.items()))
    assert result.returncode == 0, result.stderr


def test_database_level_tiny_timeouts_do_not_break_restore(
    pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer
) -> None:
    def tiny_timeouts(target: str) -> None:
        for name, value in TINY_TIMEOUTS.items():
            pg15.run_sql(f"ALTER DATABASE {target} SET {name} = '{value}'")

    env = cli.job_env(s3.endpoint_url, bucket, pg15.superuser_url(seeded_db))
    result = cli.backup_and_restore(env, pg15, prepare_target=tiny_timeouts)
    assert result.returncode == 0, result.stderr


def test_lock_the_dump_cannot_get_fails_after_the_bounded_wait(
    pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer
) -> None:
    env = cli.job_env(s3.endpoint_url, bucket, pg15.superuser_url(seeded_db), AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT="2")
    with psycopg.connect(pg15.conninfo(seeded_db)) as blocker:
        blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = cli.backup(env, timeout=120)
        elapsed = time.monotonic() - started
    assert result.returncode == 5 and "lock" in result.stderr.lower() and elapsed < 60


def test_lock_wait_leaves_no_object(pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer) -> None:
    env = cli.job_env(s3.endpoint_url, bucket, pg15.superuser_url(seeded_db), AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT="1")
    with psycopg.connect(pg15.conninfo(seeded_db)) as blocker:
        blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        cli.backup(env, timeout=120)
    client = s3.client()
    assert buckets.without_claims(buckets.object_keys(client, bucket)) == []  # a claim is no backup
    assert buckets.open_uploads(client, bucket) == []


def test_default_transaction_read_only_role_backs_up(
    pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer
) -> None:
    _, result = backup_as_new_role(pg15, seeded_db, bucket, s3, "LOGIN SUPERUSER",
                                   "ALTER ROLE {role} SET default_transaction_read_only = on")
    assert result.returncode == 0


def test_url_reserved_characters_in_the_password_reach_psycopg_and_pg_dump(
    pg15: PgCluster, seeded_db: str, bucket: str, s3: MotoServer
) -> None:
    role = make_role(pg15, "LOGIN SUPERUSER", password=RESERVED_PASSWORD)
    url = f"postgresql://{role}:{quote(RESERVED_PASSWORD, safe='')}@127.0.0.1:{pg15.port}/{seeded_db}"
    env = cli.job_env(s3.endpoint_url, bucket, url)
    result = cli.backup(env)
    assert result.returncode == 0 and RESERVED_PASSWORD not in result.stderr + result.stdout, result.stderr


@pytest.fixture(scope="module")
def tls_pg(pg_cluster_factory: PgClusterPool) -> PgCluster:
    return pg_cluster_factory(15, ssl=True)


@pytest.fixture
def tls_db(tls_pg: PgCluster) -> str:
    return postgres.seeded_database(tls_pg, "tls", SeedSpec(audit_rows_per_tenant=20)).name


def test_verify_full_with_ca_in_the_url(tls_pg: PgCluster, tls_db: str, bucket: str, s3: MotoServer) -> None:
    url = tls_pg.superuser_url(tls_db, sslmode="verify-full", sslrootcert=str(tls_pg.ca_file))
    result = cli.backup(cli.job_env(s3.endpoint_url, bucket, url))
    assert result.returncode == 0, result.stderr


def test_verify_full_with_ca_from_pgsslrootcert(tls_pg: PgCluster, tls_db: str, bucket: str, s3: MotoServer) -> None:
    # the chart mounts the CA bundle and sets PGSSLROOTCERT; libpq reads it for psycopg and pg_dump alike
    url = tls_pg.superuser_url(tls_db, sslmode="verify-full")
    env = cli.job_env(s3.endpoint_url, bucket, url, PGSSLROOTCERT=str(tls_pg.ca_file))
    assert cli.backup(env).returncode == 0


def test_verify_full_without_the_ca_fails_preflight(tls_pg: PgCluster, tls_db: str, bucket: str, s3: MotoServer) -> None:
    url = tls_pg.superuser_url(tls_db, sslmode="verify-full", sslrootcert="/nonexistent/ca.crt")
    result = cli.backup(cli.job_env(s3.endpoint_url, bucket, url))
    assert result.returncode == 4 and "cannot connect" in result.stderr


@pytest.fixture(scope="module")
def standby_pair(pg_cluster_factory: PgClusterPool) -> tuple[PgCluster, PgCluster, str]:
    primary = pg_cluster_factory(15, fresh=True)
    name = postgres.seeded_database(primary, "agent_bom", SeedSpec(audit_rows_per_tenant=40)).name
    standby = pg_cluster_factory.standby_of(primary)
    # a commit replayed after the standby started gives pg_last_xact_replay_timestamp() a value
    primary.run_sql("INSERT INTO settings VALUES ('replicated', 'yes')", dbname=name)
    wait_for_replay(primary, standby)
    return primary, standby, name


def test_backup_from_a_hot_standby_records_the_replay_time(
    standby_pair: tuple[PgCluster, PgCluster, str], bucket: str, s3: MotoServer
) -> None:
    _, standby, name = standby_pair
    result = cli.backup(cli.job_env(s3.endpoint_url, bucket, standby.superuser_url(name)))
    assert result.returncode == 0, result.stderr
    source = manifest_of(s3, bucket, result.uri)["source"]
    assert source["is_standby"] is True and source["replay_timestamp"]  # type: ignore[index]


def test_backup_from_a_hot_standby_restores_every_tenant(
    standby_pair: tuple[PgCluster, PgCluster, str], pg15: PgCluster, bucket: str, s3: MotoServer
) -> None:
    primary, standby, name = standby_pair
    result = cli.backup_and_restore(cli.job_env(s3.endpoint_url, bucket, standby.superuser_url(name)), primary)
    assert result.returncode == 0, result.stderr

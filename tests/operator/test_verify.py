"""`agent-bom-backup verify URI|latest [--deep]`: size and SHA-256 against the manifest
(streamed), and with --deep a restore into a scratch database that is verified and dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent_bom_backup.errors import ExitCode
from agent_bom_backup.verify import verify_backup
from agent_bom_backup.storage import StorageConfig
from tests.operator import planting as helpers
from tests.operator.conftest import SessionBackup
from tests.operator.planting import Planter
from tests.support import buckets
from tests.support import cli
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer


def _flip_byte(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


def _scratch_databases(cluster: PgCluster) -> list[str]:
    rows = cluster.run_sql("SELECT datname FROM pg_database WHERE datname LIKE 'agent_bom_verify_%'")
    return [r[0] for r in rows]


def test_intact_backup_verifies(planter: Planter, cli_env: dict[str, str]) -> None:
    uri = planter.plant(helpers.backup_id_aged(hours=1))
    run = cli.run_cli(["verify", uri], cli_env)
    assert (run.returncode, run.stdout.splitlines()[-1].startswith("verified")) == (0, True), str(run)


def test_corrupted_byte_exits_verify(planter: Planter, cli_env: dict[str, str]) -> None:
    dump = planter.real.dump
    uri = planter.plant(helpers.backup_id_aged(hours=1), dump_bytes=_flip_byte(dump, len(dump) // 2))
    run = cli.run_cli(["verify", uri], cli_env)
    assert run.returncode == ExitCode.VERIFY, str(run)


def test_corrupted_byte_is_reported_as_a_checksum_mismatch(planter: Planter, cli_env: dict[str, str]) -> None:
    dump = planter.real.dump
    uri = planter.plant(helpers.backup_id_aged(hours=1), dump_bytes=_flip_byte(dump, len(dump) // 2))
    run = cli.run_cli(["verify", uri], cli_env)
    assert "SHA-256" in run.error_message


def test_truncated_dump_is_reported_by_size(planter: Planter, cli_env: dict[str, str]) -> None:
    uri = planter.plant(helpers.backup_id_aged(hours=1), dump_bytes=planter.real.dump[:-10])
    run = cli.run_cli(["verify", uri], cli_env)
    assert run.returncode == ExitCode.VERIFY, str(run)
    assert "bytes, the manifest says" in run.error_message


def test_corrupted_roles_object_fails(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    uri = planter.plant(backup_id)
    planter.put(helpers.key(backup_id, buckets.ROLES), _flip_byte(planter.real.roles, 10))
    run = cli.run_cli(["verify", uri], cli_env)
    assert run.returncode == ExitCode.VERIFY, str(run)
    assert buckets.ROLES in run.error_message


def test_backup_without_manifest_fails(planter: Planter, cli_env: dict[str, str]) -> None:
    uri = planter.plant(helpers.backup_id_aged(hours=1), manifest=False)
    run = cli.run_cli(["verify", uri], cli_env)
    assert run.returncode == ExitCode.VERIFY, str(run)
    assert "has no manifest" in run.error_message


def test_latest_skips_a_newer_incomplete_backup(planter: Planter, cli_env: dict[str, str]) -> None:
    complete = helpers.backup_id_aged(hours=5)
    planter.plant(complete)
    planter.plant(helpers.backup_id_aged(hours=1), manifest=False)
    run = cli.run_cli(["verify", "latest"], cli_env)
    assert (run.returncode, run.stdout.splitlines()[0].split(":")[0]) == (0, f"backup {complete}")


def test_uri_alone_names_the_bucket(planter: Planter, cli_env: dict[str, str]) -> None:
    uri = planter.plant(helpers.backup_id_aged(hours=1))
    env = {k: v for k, v in cli_env.items() if k != "AGENT_BOM_BACKUP_BUCKET"}
    assert cli.run_cli(["verify", uri], env).returncode == 0


def test_verify_streams_without_a_temporary_file(planter: Planter, s3: MotoServer, bucket: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("verify created a temporary file")

    for name in ("NamedTemporaryFile", "TemporaryFile", "mkstemp", "mkdtemp", "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, refuse)
    uri = planter.plant(helpers.backup_id_aged(hours=1))
    config = StorageConfig(bucket=bucket, prefix=cli.PREFIX, region=helpers.region(),
                           endpoint_url=s3.endpoint_url, path_style=True)
    assert verify_backup(config, uri).ok


# ----------------------------------------------------------------------------- --deep
@pytest.fixture(scope="module")
def deep_run(s3: MotoServer, op_backup: SessionBackup, pg15: PgCluster) -> Iterator[tuple[cli.Run, str]]:
    """One `verify --deep` with the scratch URL in the environment, shared by the tests
    that only read its outcome; yields the run and the scratch server's password."""
    with buckets.fresh_bucket(s3, "abb-deep") as name:
        uri = Planter(s3, name, op_backup.real).plant(helpers.backup_id_aged(hours=1))
        env = {**cli.job_env(s3.endpoint_url, name), "AGENT_BOM_VERIFY_SCRATCH_URL": pg15.superuser_url()}
        yield cli.run_cli(["verify", uri, "--deep"], env), pg15.superuser_password


def test_deep_with_scratch_url_verifies(deep_run: tuple[cli.Run, str]) -> None:
    run, _ = deep_run
    assert (run.returncode, "restore into agent_bom_verify_" in run.stdout) == (0, True), str(run)


def test_deep_compares_owners_and_grants_as_superuser(deep_run: tuple[cli.Run, str]) -> None:
    line = next(line for line in deep_run[0].stdout.splitlines() if "restore into" in line)
    assert (", full)" in line, "not compared" in line) == (True, False), line


def test_deep_drops_the_scratch_database(deep_run: tuple[cli.Run, str], pg15: PgCluster) -> None:
    assert _scratch_databases(pg15) == []


def test_deep_scratch_password_is_not_logged(deep_run: tuple[cli.Run, str]) -> None:
    run, password = deep_run
    assert password not in run.stdout + run.stderr


def test_deep_detects_rows_missing_from_the_dump(planter: Planter, cli_env: dict[str, str],
                                                 pg15: PgCluster) -> None:
    def claim_one_more_audit_row(manifest: dict[str, Any]) -> None:
        table = next(t for t in manifest["tables"] if t["name"] == "audit_log")
        table["rows"] += 1
        table["tenants"]["team-alpha"] += 1

    uri = planter.plant(helpers.backup_id_aged(hours=1), manifest_edit=claim_one_more_audit_row)
    run = cli.run_cli(["verify", uri, "--deep", "--scratch-url", pg15.superuser_url()], cli_env)
    assert (run.returncode, "audit_log" in run.error_message) == (ExitCode.VERIFY, True), str(run)


def test_deep_failure_still_drops_the_scratch_database(planter: Planter, cli_env: dict[str, str],
                                                       pg15: PgCluster) -> None:
    def claim_a_table(manifest: dict[str, Any]) -> None:
        manifest["tables"].append({"schema": "public", "name": "ghost", "rows": 1, "tenants": None})

    uri = planter.plant(helpers.backup_id_aged(hours=1), manifest_edit=claim_a_table)
    cli.run_cli(["verify", uri, "--deep", "--scratch-url", pg15.superuser_url()], cli_env)
    assert _scratch_databases(pg15) == []


def test_deep_skips_the_restore_when_the_checksum_fails(planter: Planter, cli_env: dict[str, str],
                                                        pg15: PgCluster) -> None:
    uri = planter.plant(helpers.backup_id_aged(hours=1), dump_bytes=_flip_byte(planter.real.dump, 100))
    run = cli.run_cli(["verify", uri, "--deep", "--scratch-url", pg15.superuser_url()], cli_env)
    assert run.returncode == ExitCode.VERIFY, str(run)
    assert "skipped  restore" in run.stdout


def test_deep_without_url_uses_a_throwaway_cluster(planter: Planter, cli_env: dict[str, str]) -> None:
    """Runs as root here: the throwaway cluster's server programs run as the postgres user."""
    uri = planter.plant(helpers.backup_id_aged(hours=1))
    run = cli.run_cli(["verify", uri, "--deep"], cli_env)
    assert (run.returncode, "on a throwaway PostgreSQL 15 cluster (PostgreSQL 15" in run.stdout) == (0, True), str(run)


def test_deep_scratch_role_without_createdb_is_refused(planter: Planter, cli_env: dict[str, str],
                                                       pg15: PgCluster) -> None:
    role = "abb_verify_nocreatedb"
    pg15.run_sql(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'scratch-pw'")
    uri = planter.plant(helpers.backup_id_aged(hours=1))
    run = cli.run_cli(["verify", uri, "--deep", "--scratch-url", pg15.url("postgres", role, "scratch-pw")], cli_env)
    assert run.returncode == ExitCode.CONFIG, str(run)
    assert "may not create databases" in run.error_message


def test_deep_scratch_server_older_than_the_source_is_refused(planter: Planter, cli_env: dict[str, str],
                                                               pg15: PgCluster) -> None:
    def from_a_newer_server(manifest: dict[str, Any]) -> None:
        manifest["source"]["server_major"] = 18

    uri = planter.plant(helpers.backup_id_aged(hours=1), manifest_edit=from_a_newer_server)
    run = cli.run_cli(["verify", uri, "--deep", "--scratch-url", pg15.superuser_url()], cli_env)
    assert run.returncode == ExitCode.CONFIG, str(run)
    assert "older than the backed-up PostgreSQL 18" in run.error_message


def test_deep_as_a_managed_style_admin_verifies_forced_rls_tables(planter: Planter, cli_env: dict[str, str],
                                                                   pg15: PgCluster) -> None:
    """A scratch role with CREATEDB and CREATEROLE but no BYPASSRLS (a managed instance's
    admin): a --no-owner restore it owns, FORCE-RLS rows counted as their owner."""
    role = "abb_verify_admin"
    pg15.run_sql(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CREATEDB CREATEROLE PASSWORD 'scratch-pw'")
    uri = planter.plant(helpers.backup_id_aged(hours=1))
    run = cli.run_cli(["verify", uri, "--deep", "--scratch-url", pg15.url("postgres", role, "scratch-pw")], cli_env)
    assert (run.returncode, "no-owner/no-privileges): 5 tables" in run.stdout) == (0, True), str(run)


def test_latest_stops_at_an_unreadable_newest_backup(planter: Planter, cli_env: dict[str, str]) -> None:
    """One catalog with restore: verify latest does not silently verify an older backup."""
    planter.plant(helpers.backup_id_aged(hours=5))
    newest = helpers.backup_id_aged(hours=1)
    planter.plant(newest, manifest=False)
    planter.put(helpers.key(newest, buckets.MANIFEST), b"{not json")
    run = cli.run_cli(["verify", "latest"], cli_env)
    assert (run.returncode, f", {newest}, is unreadable: " in run.error_message) == (ExitCode.VERIFY, True), str(run)

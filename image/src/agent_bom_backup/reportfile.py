"""Files that survive a hard kill: written whole or not at all.

A report rewritten in place can be left empty or half-written by a SIGKILL or an OOM
kill; one renamed into place is either the previous version or the new one. The data is
fsynced before the rename and the directory after it, so a crash of the node keeps
whichever version the rename left (ext4, xfs: the rename is durable once the directory
is synced).
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path``: a temporary file beside it (``mode``), fsync, rename
    over ``path``, fsync the directory. Raises OSError; the temporary file never stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op where directories
    cannot be opened for it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

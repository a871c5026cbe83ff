"""Documentation pages generated from code: write them, or check that they are current.

``docs/configuration.md`` (``scripts/gen_docs.py``, from the CLI) and
``docs/failure-modes.md`` (``python -m tests.reliability.failure_modes_page``, from the
failure-mode table) share this command line: no argument writes the page, ``--check``
exits 1 naming the command to run when the page on disk differs (the tests run it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from devstack import tools


def generate(page: Path, render: Callable[[], str], *, command: str, description: str | None = None,
             argv: list[str] | None = None) -> int:
    """Write ``render()`` to ``page``, or with ``--check`` compare them; returns the exit code."""
    parser = argparse.ArgumentParser(prog=command, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help=f"fail when {_shown(page)} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not page.exists() or page.read_text() != text:
            print(f"{_shown(page)} is stale: run {command}", file=sys.stderr)
            return 1
        return 0
    page.write_text(text)
    print(f"wrote {_shown(page)}")
    return 0


def _shown(page: Path) -> str:
    try:
        return str(page.relative_to(tools.repo_root()))
    except ValueError:
        return str(page)

"""Atomic writes: a report is replaced whole, never left half-written."""

import os
import stat
from pathlib import Path

from agent_bom_backup.reportfile import write_atomic


def test_write_atomic_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    write_atomic(path, "new")
    assert path.read_text() == "new"


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_atomic(tmp_path / "report.json", "x")
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_atomic_uses_the_mode_given(tmp_path: Path) -> None:
    write_atomic(tmp_path / "safety.json", "x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "safety.json").stat().st_mode) == 0o600

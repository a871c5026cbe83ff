"""The mapping of docs/runbook.md's shell commands to their exercises
(tests/operator/test_docs_commands.py) is complete and current, checked without running any:
every documented command has an exercise, every exercise a command, every mirror a test."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import tests.operator.test_docs_commands as docs_commands
from tests.operator.test_docs_commands import (
    BLOCKS,
    EXERCISES,
    RUNNABLE_BLOCKS,
    SHELL_BLOCKS,
    Mirrored,
    commands,
    exercise_of,
    normalize,
)


def test_every_documented_command_is_exercised() -> None:
    missing = [normalize(c) for b in SHELL_BLOCKS for c in commands(b) if exercise_of(c) is None]
    assert missing == [], "add these runbook commands to EXERCISES (run them or mirror them):\n" + "\n".join(missing)


def test_every_exercise_is_still_documented() -> None:
    documented = {normalize(c) for b in SHELL_BLOCKS for c in commands(b)}
    assert sorted(set(EXERCISES) - documented) == []


def test_every_mirror_names_a_test_in_this_module() -> None:
    defined = {node.name for node in ast.parse(Path(docs_commands.__file__).read_text()).body if isinstance(node, ast.FunctionDef)}
    mirrors = {e.test for e in EXERCISES.values() if isinstance(e, Mirrored)}
    assert sorted(mirrors - defined) == []


def test_the_runbook_has_shell_blocks_to_check() -> None:
    assert len(RUNNABLE_BLOCKS) >= 10


def test_documented_lifecycle_rule_is_valid_json() -> None:
    rules = json.loads(next(b.body for b in BLOCKS if b.file_name == "lifecycle.json"))["Rules"]
    assert [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in rules] == [2]

"""scripts/callflow.py (issue 24): the count of stops and returns of the restore's config,
on a small package whose walk is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow import PACKAGE, measure
from devstack import tools

pytestmark = pytest.mark.unit

FILES = {
    "__init__.py": "",
    "config.py": "from dataclasses import dataclass\n\n@dataclass\nclass RestoreConfig:\n    source: str\n",
    "context.py": (
        "from dataclasses import dataclass\nfrom .config import RestoreConfig\n\n"
        "@dataclass\nclass Ctx:\n    config: RestoreConfig\n\n    def step(self) -> None:\n        pass\n"),
    "helpers.py": (
        "from .config import RestoreConfig\n\n"
        "def check(config: RestoreConfig) -> None:\n    pass\n\n"
        "def name_of(source: str) -> str:\n    return source\n"),
    "restore.py": (
        "from .config import RestoreConfig\nfrom .context import Ctx\nfrom .helpers import check, name_of\n\n"
        "def plan(config: RestoreConfig) -> Ctx:\n    check(config)\n    return Ctx(config)\n\n"
        "def run_restore(config: RestoreConfig) -> None:\n"
        "    ctx = plan(config)\n"
        "    ctx.step()\n"
        "    check(ctx.config)\n"
        "    name_of(config.source)\n"),
}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE / name).write_text(text)
    return tmp_path


def test_stops_follow_the_config_and_what_carries_it(src: Path) -> None:
    count = measure(src)
    assert [(s.module.removeprefix(PACKAGE + "."), s.qualname) for s in count.stops] == [
        ("restore", "plan"), ("helpers", "check"), ("context", "Ctx.step"), ("helpers", "check")]


def test_a_call_back_into_a_module_left_before_is_a_return(src: Path) -> None:
    assert [s.qualname for s in measure(src).returns] == ["check"]


def test_values_read_from_the_config_count_only_when_asked(src: Path) -> None:
    count = measure(src, values=True)
    assert (len(count.stops), count.modules, len(count.returns)) == (5, 3, 2)


#: issue 24's bound: half the returns the code before the restructure (740dde6) makes under
#: the same rule (26 with --values); a change that sends the config back and forth again fails
RETURNS_BOUND = 13


def test_the_restores_config_returns_to_modules_it_left_at_most_half_as_often_as_before() -> None:
    count = measure(tools.repo_root() / "image" / "src", values=True)
    assert len(count.returns) <= RETURNS_BOUND, "\n".join(
        f"{stop.caller} -> {stop.module}.{stop.qualname}" for stop in count.returns)

"""The test tiers (README "Tests"): the folder is the tier (every test under tests/unit is
``unit`` and none elsewhere is; tests/e2e and tests/reliability are ``e2e``), a ``unit`` test
starts no server and runs no helm, and is in no other tier. tests/conftest.py enforces it;
these tests prove that it does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import tests.conftest as suite
from devstack import tools

UNIT_FILE = suite.UNIT_DIR / "test_x.py"
CHART_FILE = suite.TESTS_DIR / "chart" / "test_x.py"


class FakeItem:
    def __init__(self, *markers: str, path: Path = UNIT_FILE) -> None:
        self.path = path
        self.nodeid = f"{path.relative_to(suite.TESTS_DIR.parent)}::test_x"
        self.markers = set(markers)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None

    def add_marker(self, name: str) -> None:
        self.markers.add(name)


def config_with(markexpr: str) -> SimpleNamespace:
    return SimpleNamespace(getoption=lambda name, default=None: markexpr if name == "markexpr" else default)


def test_a_unit_test_cannot_run_helm() -> None:
    with pytest.raises(AssertionError, match="is marked unit but runs helm 4"):
        tools.helm_binary(4)


@pytest.mark.parametrize("other", ["e2e", "image"])
def test_a_test_in_the_unit_and_another_tier_is_a_collection_error(other: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"is marked unit and {other}"):
        suite.pytest_collection_modifyitems([FakeItem("unit", other)])


def test_a_test_in_one_tier_passes_collection() -> None:
    suite.pytest_collection_modifyitems([FakeItem("unit"), FakeItem("e2e", path=CHART_FILE), FakeItem(path=CHART_FILE)])


@pytest.mark.parametrize("folder", ["chart", "e2e", "operator", "."])
def test_a_unit_marker_outside_tests_unit_is_a_collection_error(folder: str) -> None:
    item = FakeItem("unit", path=suite.TESTS_DIR / folder / "test_x.py")
    with pytest.raises(pytest.UsageError, match="is marked unit outside tests/unit: move it to tests/unit/<area>/"):
        suite.pytest_collection_modifyitems([item])


@pytest.mark.parametrize(("folder", "tier"), [("unit", "unit"), ("unit/chart", "unit"), ("e2e", "e2e"),
                                             ("reliability", "e2e"), ("chart", None), ("image", None)])
def test_the_folder_gives_the_tier(folder: str, tier: str | None) -> None:
    item = FakeItem(path=suite.TESTS_DIR / folder / "test_x.py")
    suite.pytest_itemcollected(item)
    assert item.markers == ({tier} if tier else set())


def test_every_test_under_tests_unit_is_marked_unit(request: pytest.FixtureRequest) -> None:
    """This very test carries the marker, from its folder alone (this module sets none)."""
    assert [m.name for m in request.node.iter_markers() if m.name == "unit"]
    assert suite.folder_tier(Path(__file__)) == "unit"


@pytest.mark.parametrize("path", ["unit", "unit/chart", "unit/chart/test_x.py", "."])
def test_under_m_unit_tests_unit_and_its_parents_are_collected(path: str) -> None:
    assert suite.pytest_ignore_collect(suite.TESTS_DIR / path, config_with("unit")) is None


@pytest.mark.parametrize("path", ["chart", "e2e", "operator/test_list.py", "test_support.py"])
def test_under_m_unit_nothing_else_is_collected(path: str) -> None:
    assert suite.pytest_ignore_collect(suite.TESTS_DIR / path, config_with("unit")) is True


@pytest.mark.parametrize("markexpr", ["", "not unit", "unit or e2e", "e2e"])
def test_other_selections_collect_everything(markexpr: str) -> None:
    assert suite.pytest_ignore_collect(suite.TESTS_DIR / "chart", config_with(markexpr)) is None


@pytest.mark.parametrize("fixture", sorted(suite.SERVER_FIXTURES))
def test_a_unit_test_starting_a_server_fails(fixture: str) -> None:
    request = SimpleNamespace(_pyfuncitem=FakeItem("unit"))
    with pytest.raises(pytest.fail.Exception, match=f"starts a server \\({fixture}\\)"):
        suite.pytest_fixture_setup(SimpleNamespace(argname=fixture), request)


def test_another_test_may_start_a_server() -> None:
    assert suite.pytest_fixture_setup(SimpleNamespace(argname="s3"), SimpleNamespace(_pyfuncitem=FakeItem())) is None

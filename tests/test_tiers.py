"""The test tiers (README "Tests"): a ``unit`` test starts no server and runs no helm, and
is in no other tier. tests/conftest.py enforces it; these tests prove that it does."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import tests.conftest as suite
from devstack import tools

pytestmark = pytest.mark.unit


class FakeItem:
    def __init__(self, *markers: str) -> None:
        self.nodeid = "tests/test_x.py::test_x"
        self.markers = set(markers)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_a_unit_test_cannot_run_helm() -> None:
    with pytest.raises(AssertionError, match="is marked unit but runs helm 4"):
        tools.helm_binary(4)


@pytest.mark.parametrize("other", ["e2e", "image"])
def test_a_test_in_the_unit_and_another_tier_is_a_collection_error(other: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"is marked unit and {other}"):
        suite.pytest_collection_modifyitems([FakeItem("unit", other)])


def test_a_test_in_one_tier_passes_collection() -> None:
    suite.pytest_collection_modifyitems([FakeItem("unit"), FakeItem("e2e"), FakeItem()])


@pytest.mark.parametrize("fixture", sorted(suite.SERVER_FIXTURES))
def test_a_unit_test_starting_a_server_fails(fixture: str) -> None:
    request = SimpleNamespace(_pyfuncitem=FakeItem("unit"))
    with pytest.raises(pytest.fail.Exception, match=f"starts a server \\({fixture}\\)"):
        suite.pytest_fixture_setup(SimpleNamespace(argname=fixture), request)


def test_another_test_may_start_a_server() -> None:
    assert suite.pytest_fixture_setup(SimpleNamespace(argname="s3"), SimpleNamespace(_pyfuncitem=FakeItem())) is None

"""Every case of the helm-unittest suites (deploy/helm/agent-bom/tests/*_test.yaml) passes when
run here by tests/chart/helm_unittest.py with the real helm (the suites' schema and the runner's
semantics are tests/unit/chart/test_helm_unittest_suites.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.helm_unittest import run_test
from tests.unit.chart.test_helm_unittest_suites import SUITES, _load

CASES = [(path, index) for path in SUITES for index, _ in enumerate(yaml.safe_load(path.read_text())["tests"])]


def _case_id(case: tuple[Path, int]) -> str:
    path, index = case
    return f"{path.stem}::{yaml.safe_load(path.read_text())['tests'][index]['it']}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_suite_case_passes(case):
    path, index = case
    suite = _load(path)
    run_test(path, suite, suite["tests"][index])

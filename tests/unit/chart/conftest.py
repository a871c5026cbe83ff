"""Fixtures of the chart's unit tests (tests/unit/chart): reference schemas beside the project."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.chart.helm_render import reference_file


@pytest.fixture(scope="session")
def helm_testsuite_schema() -> dict[str, Any]:
    return json.loads(reference_file("helm-testsuite.schema.json").read_text())


@pytest.fixture(scope="session")
def github_workflow_schema() -> dict[str, Any]:
    return json.loads(reference_file("github-workflow.schema.json").read_text())

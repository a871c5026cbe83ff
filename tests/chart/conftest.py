"""Fixtures of the chart tests (tests/chart): reference schemas beside the project.

The rendering helper lives in :mod:`tests.chart.helm_render`; Helm comes from
``scripts/bootstrap.sh helm`` through :func:`devstack.tools.helm_binary`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm_render import REFERENCE_DIR, prometheusrule_schema


def reference_file(name: str) -> Path:
    """A file of ``../shared/reference``; skips the test loudly when the folder is absent
    (a user's clone). In this project's CI the folder is always present."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(
            f"REFERENCE SCHEMA MISSING: {path} is absent, so this check did NOT run "
            "(expected beside the project as ../shared/reference/)"
        )
    return path


@pytest.fixture(scope="session")
def helm_testsuite_schema() -> dict[str, Any]:
    return json.loads(reference_file("helm-testsuite.schema.json").read_text())


@pytest.fixture(scope="session")
def github_workflow_schema() -> dict[str, Any]:
    return json.loads(reference_file("github-workflow.schema.json").read_text())


@pytest.fixture(scope="session")
def prometheusrule_openapi_schema() -> dict[str, Any]:
    """The PrometheusRule CRD's ``spec.versions[0].schema.openAPIV3Schema``."""
    reference_file("prometheusrule-crd.yaml")
    schema = prometheusrule_schema()
    assert schema is not None
    return schema

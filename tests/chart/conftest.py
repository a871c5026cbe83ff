"""Fixtures of the chart tests (tests/chart): reference schemas beside the project.

The rendering helper lives in :mod:`tests.chart.helm_render`; Helm comes from
``scripts/bootstrap.sh helm`` through :func:`devstack.tools.helm_binary`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import prometheusrule_schema, reference_file


@pytest.fixture(scope="session")
def prometheusrule_openapi_schema() -> dict[str, Any]:
    """The PrometheusRule CRD's ``spec.versions[0].schema.openAPIV3Schema``."""
    reference_file("prometheusrule-crd.yaml")
    schema = prometheusrule_schema()
    assert schema is not None
    return schema

"""Every check tests/chart/test_checkov.py lets checkov skip is justified by a
`checkov:skip=` comment next to the resource in a template (checkov itself not needed)."""

from __future__ import annotations

import re

import pytest

from tests.chart.helm_render import CHART_DIR
from tests.chart.test_checkov import SKIPPED_CHECKS


@pytest.mark.parametrize("check_id", sorted(SKIPPED_CHECKS))
def test_skip_is_justified_in_the_template(check_id):
    comments = "\n".join(p.read_text() for p in (CHART_DIR / "templates").rglob("*.yaml"))
    assert re.search(rf"checkov:skip={check_id}:\s*\S", comments)

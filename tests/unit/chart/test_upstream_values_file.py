"""The upstream agent-bom values fixture that tests/chart/test_upstream_values.py renders."""

from __future__ import annotations

from tests.chart.test_upstream_values import _values


class TestProductionValues:
    def test_the_file_holds_the_rest_of_agent_bom(self):
        """Guards the fixture: it is a full agent-bom values file, not just the backup block."""
        assert {"scanner", "monitor", "networkPolicy", "serviceAccount", "pdb"} <= set(_values(filled=True))

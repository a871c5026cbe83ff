"""The one ``render_chart`` (devstack.chart; tests/chart/helm_render.py only passes its strict
validator): every document goes through the validator, a document it rejects fails the
render, and callers get copies they may change."""

from __future__ import annotations

from typing import Any

import pytest

from devstack import chart
from tests.chart import helm_render
from tests.chart.helm_render import CRONJOB_TEMPLATE, KUBE_VERSIONS, backup_values


def test_the_validator_sees_every_document_with_the_kube_version() -> None:
    seen: list[tuple[str, str]] = []

    def record(doc: dict[str, Any], kube_version: str) -> None:
        seen.append((doc["kind"], kube_version))

    docs = chart.render_chart(backup_values(), kube_version=KUBE_VERSIONS[0], validate=record)
    assert seen == [(doc["kind"], KUBE_VERSIONS[0]) for doc in docs]


def test_a_document_the_validator_rejects_fails_the_render() -> None:
    def reject_cronjobs(doc: dict[str, Any], kube_version: str) -> None:
        if doc["kind"] == "CronJob":
            raise AssertionError(f"rejected {doc['metadata']['name']}")

    with pytest.raises(AssertionError, match="rejected agent-bom-control-plane-backup"):
        chart.render_chart(backup_values(), validate=reject_cronjobs)


def test_the_chart_tests_render_chart_validates_strictly() -> None:
    """tests.chart.helm_render.render_chart is the one render_chart with validate_manifest."""
    calls: list[str] = []
    original = helm_render.validate_manifest

    def counting(doc: dict[str, Any], kube_version: str = helm_render.KUBE_VERSION) -> None:
        calls.append(doc["kind"])
        original(doc, kube_version)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(helm_render, "validate_manifest", counting)
        docs = helm_render.render_chart(backup_values(schedule="5 4 * * *"))
    assert calls == [doc["kind"] for doc in docs]


def test_callers_get_copies_they_may_change() -> None:
    (first,) = chart.render_chart(backup_values(), show_only=[CRONJOB_TEMPLATE])
    first["spec"]["schedule"] = "changed"
    (second,) = chart.render_chart(backup_values(), show_only=[CRONJOB_TEMPLATE])
    assert second["spec"]["schedule"] == "0 3 * * *"

"""The benchmark harness works end to end (quick mode: a tiny database, one repetition).

No speed or memory threshold is asserted here — machines are noisy and the benchmark
itself reports ratios (bench/run.sh, docs/performance.md). This only proves that one
command produces a results file with every measurement, a summary and the plots.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack import tools

pytestmark = pytest.mark.e2e

RUN_SH = tools.repo_root() / "bench" / "run.sh"
BACKUP_KINDS = ("limit_a", "limit_b", "peer", "ours")
RESTORE_KINDS = ("restore_ours", "restore_baseline")
EXTRA_FIELDS = {
    "peer": ("dump_seconds", "upload_seconds", "bytes"),
    "limit_b": ("process_seconds", "bytes"),
    "ours": ("bytes",),
    "restore_baseline": ("download_seconds", "pg_restore_seconds"),
}
PLOTS = ("backup", "restore", "compression", "memory", "rss")
STEM = "smoke"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def quick_run(tmp_root: Path) -> Path:
    """Run ``bench/run.sh --quick`` once into a temp results folder; returns that folder."""
    results_dir = tmp_root / "bench-results"
    work_dir = tmp_root / "bench-work"  # under tmp_root: the postgres OS user can reach it
    result = subprocess.run(
        [str(RUN_SH), "--quick", "--scale", "5MB", "--name", STEM,
         "--results-dir", str(results_dir), "--work-dir", str(work_dir)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, f"bench/run.sh failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return results_dir


@pytest.fixture(scope="module")
def results(quick_run: Path) -> dict[str, Any]:
    return json.loads((quick_run / f"{STEM}.json").read_text())


def _runs(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (entry["setting"], kind, run)
        for scale in results["scales"]
        for entry in scale["settings"]
        for kind, runs in entry["runs"].items()
        for run in runs
    ]


def test_quick_mode_measures_one_small_scale_once(results: dict[str, Any]) -> None:
    assert [s["label"] for s in results["scales"]] == ["5MB"]
    assert results["reps"] == 1


def test_every_available_setting_has_every_measurement(results: dict[str, Any]) -> None:
    measured = {
        (entry["setting"], kind): len(runs)
        for entry in results["scales"][0]["settings"]
        for kind, runs in entry["runs"].items()
    }
    expected = {(s["name"], kind): 1 for s in results["settings"] for kind in BACKUP_KINDS + RESTORE_KINDS}
    assert measured == expected


def test_pg_dump_default_and_our_default_are_measured(results: dict[str, Any]) -> None:
    names = [s["name"] for s in results["settings"]]
    assert results["pg_dump_default"] in names
    assert results["ours_default"]["setting"] in names


def test_every_measurement_has_numeric_time_and_memory(results: dict[str, Any]) -> None:
    bad = [
        (setting, kind, field)
        for setting, kind, run in _runs(results)
        for field in ("seconds", "peak_rss_main_mib", "peak_rss_tree_mib")
        if not (_is_number(run.get(field)) and run[field] > 0)
    ]
    assert not bad


def test_every_measurement_accounts_cpu_time(results: dict[str, Any]) -> None:
    bad = [
        (setting, kind, field)
        for setting, kind, run in _runs(results)
        for field in ("capacity_s", "busy_s", "command_s", "servers_s", "other_s")
        if not _is_number(run.get("cpu", {}).get(field))
    ]
    assert not bad


def test_two_step_restore_baseline_and_upload_record_their_parts(results: dict[str, Any]) -> None:
    bad = [
        (setting, kind, field)
        for setting, kind, run in _runs(results)
        for field in EXTRA_FIELDS.get(kind, ())
        if not _is_number(run.get(field))
    ]
    assert not bad


def test_our_backup_records_its_phases(results: dict[str, Any]) -> None:
    phases = [run["phases"] for _, kind, run in _runs(results) if kind == "ours"]
    assert phases
    assert all({"startup_preflight", "stream"} <= set(p) and all(map(_is_number, p.values())) for p in phases)


def test_unavailable_settings_say_why(results: dict[str, Any]) -> None:
    assert all(item["reason"] for item in results["unavailable"])


def test_targets_have_numeric_values(results: dict[str, Any]) -> None:
    targets = results["targets"]
    assert {t["id"] for t in targets} >= {
        "default_vs_two_step", "faster_than_two_step", "near_limits", "restore_vs_baseline", "rss_backup",
    }
    assert all(_is_number(v) for t in targets for v in t["value"].values())


def test_summary_lists_targets_and_links_every_plot(quick_run: Path) -> None:
    summary = (quick_run / f"{STEM}.md").read_text()
    assert "### Targets" in summary
    assert all(f"({STEM}-{plot}.png)" in summary for plot in PLOTS)


@pytest.mark.parametrize("plot", PLOTS)
def test_plot_is_a_png(quick_run: Path, plot: str) -> None:
    assert (quick_run / f"{STEM}-{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

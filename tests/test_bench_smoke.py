"""The benchmark harness works end to end (quick mode: a tiny database, one repetition,
moto): the host CLI and the job image as the chart runs it, each with its floors, the
two-step reference, and the restore against download + pg_restore.

No speed or memory threshold is asserted here — machines are noisy and the benchmark
itself reports ratios (bench/run.sh, docs/performance.md). This proves that one command
produces a results file with every measurement, a summary and the plots, and that the
targets are judged the way docs/performance.md says.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack import tools

_spec = importlib.util.spec_from_file_location("bench_report", tools.repo_root() / "bench" / "report.py")
assert _spec is not None and _spec.loader is not None
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_SH = tools.repo_root() / "bench" / "run.sh"
KINDS = {
    "host": {"limit_a", "limit_b", "peer", "ours", "restore_ours", "restore_baseline"},
    "image": {"limit_a", "limit_b", "ours", "restore_ours", "restore_baseline"},
}
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
def quick_run(tmp_root: Path, job_image: str) -> Path:
    """Run ``bench/run.sh --quick`` once into a temp results folder (with the session's
    job image); returns that folder."""
    results_dir = tmp_root / "bench-results"
    work_dir = tmp_root / "bench-work"  # under tmp_root: the postgres OS user can reach it
    result = subprocess.run(
        [str(RUN_SH), "--quick", "--scale", "5MB", "--name", STEM, "--image", job_image,
         "--results-dir", str(results_dir), "--work-dir", str(work_dir)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, f"bench/run.sh failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return results_dir


@pytest.fixture(scope="module")
def results(quick_run: Path) -> dict[str, Any]:
    return json.loads((quick_run / f"{STEM}.json").read_text())


def _runs(results: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (entry["runner"], entry["setting"], kind, run)
        for scale in results["scales"]
        for entry in scale["entries"]
        for kind, runs in entry["runs"].items()
        for run in runs
    ]


def _default_entry(results: dict[str, Any], runner: str) -> dict[str, Any]:
    (entry,) = [e for e in results["scales"][0]["entries"] if e["runner"] == runner and e["is_default"]]
    return entry


def test_quick_mode_measures_one_small_scale_once_on_moto(results: dict[str, Any]) -> None:
    assert ([(s["s3"], s["label"]) for s in results["scales"]], results["reps"]) == ([("moto", "5MB")], 1)


def test_host_cli_and_job_image_are_both_measured(results: dict[str, Any]) -> None:
    assert [r["name"] for r in results["runners"]] == ["host", "image"]


@pytest.mark.parametrize(("runner", "default"), [("host", "gzip:1"), ("image", "zstd:1")])
def test_each_runner_reports_what_auto_resolves_to(results: dict[str, Any], runner: str, default: str) -> None:
    (described,) = [r for r in results["runners"] if r["name"] == runner]
    assert described["auto"]["setting"] == default


def test_quick_mode_measures_each_default_and_the_two_step_reference(results: dict[str, Any]) -> None:
    measured = sorted((e["runner"], e["setting"]) for e in results["scales"][0]["entries"])
    assert measured == [("host", "gzip:1"), ("host", "gzip:6"), ("image", "zstd:1")]


def test_every_entry_has_every_measurement_once(results: dict[str, Any]) -> None:
    bad = [(e["runner"], e["setting"], {k: len(v) for k, v in e["runs"].items()})
           for e in results["scales"][0]["entries"]
           if {k: len(v) for k, v in e["runs"].items()} != dict.fromkeys(KINDS[e["runner"]], 1)]
    assert not bad


def test_image_backup_at_its_default_writes_zstd(results: dict[str, Any]) -> None:
    (run,) = _default_entry(results, "image")["runs"]["ours"]
    assert run["compression"] == "zstd:1"


def test_image_restore_uses_the_image_pg_restore(results: dict[str, Any]) -> None:
    (run,) = _default_entry(results, "image")["runs"]["restore_ours"]
    assert run["pg_restore"].startswith("17.")


@pytest.mark.parametrize("kind", ["ours", "restore_ours"])
def test_image_measurements_see_the_container_processes(results: dict[str, Any], kind: str) -> None:
    (run,) = _default_entry(results, "image")["runs"][kind]
    assert (run["cpu"].get("tree:agent-bom-backup_s", 0) > 0, run["peak_rss_main_mib"] > 20) == (True, True), run


def test_every_measurement_has_numeric_time_and_memory(results: dict[str, Any]) -> None:
    bad = [
        (runner, setting, kind, field)
        for runner, setting, kind, run in _runs(results)
        for field in ("seconds", "peak_rss_main_mib", "peak_rss_tree_mib")
        if not (_is_number(run.get(field)) and run[field] > 0)
    ]
    assert not bad


def test_every_measurement_accounts_cpu_time(results: dict[str, Any]) -> None:
    bad = [
        (runner, setting, kind, field)
        for runner, setting, kind, run in _runs(results)
        for field in ("capacity_s", "busy_s", "command_s", "servers_s", "other_s", "server:postgres_s")
        if not _is_number(run.get("cpu", {}).get(field))
    ]
    assert not bad


def test_two_step_restore_baseline_and_upload_record_their_parts(results: dict[str, Any]) -> None:
    bad = [
        (runner, setting, kind, field)
        for runner, setting, kind, run in _runs(results)
        for field in EXTRA_FIELDS.get(kind, ())
        if not _is_number(run.get(field))
    ]
    assert not bad


def test_backup_records_its_phases(results: dict[str, Any]) -> None:
    phases = [run["phases"] for _, _, kind, run in _runs(results) if kind == "ours"]
    expected = {"startup", "preflight", "pg_dump_first_byte", "stream", "roles_manifest_exit"}
    assert phases and all(set(p) == expected and all(map(_is_number, p.values())) for p in phases), phases


def test_backup_start_up_ends_at_pg_dumps_first_byte(results: dict[str, Any]) -> None:
    startups = [run["startup"] for _, _, kind, run in _runs(results) if kind == "ours"]
    assert all(0 < s["to_first_statement"] < s["to_first_byte"] for s in startups), startups


def test_container_start_up_is_measured(results: dict[str, Any]) -> None:
    assert results["scales"][0]["container_startup_s"]["n"] == 1


def test_targets_are_evaluated_for_each_runner_with_numbers(results: dict[str, Any]) -> None:
    targets = results["targets"]
    ids = {(t["runner"], t["id"]) for t in targets}
    expected = {(runner, tid) for runner in ("host", "image") for tid in (
        "default_vs_two_step", "object_vs_two_step", "default_vs_floors", "restore_vs_baseline", "startup",
        "rss_backup", "rss_restore")}
    assert ids == expected
    assert all(_is_number(v) for t in targets for v in t["value"].values())


def test_summary_lists_targets_and_links_every_plot(quick_run: Path) -> None:
    summary = (quick_run / f"{STEM}.md").read_text()
    assert "### Targets" in summary
    assert all(f"({STEM}-{plot}.png)" in summary for plot in PLOTS)


@pytest.mark.parametrize("plot", PLOTS)
def test_plot_is_a_png(quick_run: Path, plot: str) -> None:
    assert (quick_run / f"{STEM}-{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ target judgement
def _synthetic(ours: float, peer: float, label: str = "1GB", target_bytes: int = 10**9) -> dict[str, Any]:
    """A results file with one image entry at its default and the host's two-step reference."""
    def record(seconds: float, **extra: Any) -> dict[str, Any]:
        return {"seconds": seconds, "peak_rss_main_mib": 90.0, "peak_rss_tree_mib": 100.0, **extra}

    image = {"runner": "image", "setting": "zstd:1", "is_default": True, "runs": {
        "limit_a": [record(ours / 2)], "limit_b": [record(1.0)],
        "ours": [record(ours, bytes=100, startup={"to_first_byte": 0.2})],
        "restore_ours": [record(10.5)], "restore_baseline": [record(10.0)]}}
    host = {"runner": "host", "setting": "gzip:6", "is_default": False, "runs": {"peer": [record(peer, bytes=120)]}}
    return {
        "pg_dump_default": "gzip:6",
        "runners": [{"name": "image", "auto": {"setting": "zstd:1"}}],
        "scales": [{"s3": "moto", "label": label, "data": {"target_bytes": target_bytes}, "entries": [image, host]}],
    }


def _verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    return {t["id"]: t["met"] for t in report.evaluate_targets(results)}


def test_targets_judge_the_image_default_against_the_two_step_reference() -> None:
    assert (_verdicts(_synthetic(ours=3.0, peer=10.0))["default_vs_two_step"],
            _verdicts(_synthetic(ours=3.5, peer=10.0))["default_vs_two_step"]) == (True, False)


def test_targets_judge_the_floors_only_from_1_gb() -> None:
    # ours = 2 x limit A: missed at 1 GB, only reported at 100 MB
    assert (_verdicts(_synthetic(3.0, 10.0))["default_vs_floors"],
            _verdicts(_synthetic(3.0, 10.0, "100MB", 10**8))["default_vs_floors"]) == (False, None)


def test_targets_judge_restore_object_size_start_up_and_memory() -> None:
    verdicts = _verdicts(_synthetic(3.0, 10.0))
    assert {k: verdicts[k] for k in ("restore_vs_baseline", "object_vs_two_step", "startup", "rss_backup")} == {
        "restore_vs_baseline": True, "object_vs_two_step": True, "startup": True, "rss_backup": True}


# ------------------------------------------------------------------ encryption's cost (issue 30)
_enc_spec = importlib.util.spec_from_file_location("bench_encryption", tools.repo_root() / "bench" / "encryption.py")
assert _enc_spec is not None and _enc_spec.loader is not None
encryption = importlib.util.module_from_spec(_enc_spec)
_enc_spec.loader.exec_module(encryption)

ENCRYPTION_PY = tools.repo_root() / "bench" / "encryption.py"
#: a host run in the results file's first format (one run at the top level), as committed before the image runner
HOST_FORMAT_1 = {"kind": "encryption", "date": "2026-12-07T03:56:12+00:00", "store": "moto", "runner": "host CLI",
                 "results": [{"scale": "100MB", "setting": "gzip:1", "mode": mode, "repetition": 0,
                              "backup": {"seconds": 1.0, "peak_rss_tree_mib": 90.0},
                              "restore": {"seconds": 1.0, "peak_rss_tree_mib": 90.0}} for mode in ("plain", "age")]}


@pytest.fixture(scope="module")
def encryption_run(tmp_root: Path, job_image: str) -> Path:
    """``bench/encryption.py`` with the image runner at a tiny scale, once, into a results
    folder that holds a host run in the first format already; returns that folder."""
    results_dir = tmp_root / "bench-encryption-results"
    results_dir.mkdir()
    (results_dir / "encryption.json").write_text(json.dumps(HOST_FORMAT_1))
    result = subprocess.run(
        [str(tools.venv_bin_dir() / "python"), str(ENCRYPTION_PY), "--runner", "image", "--image", job_image,
         "--scales", "5MB", "--repetitions", "1", "--quiet-wait", "0", "--results-dir", str(results_dir),
         "--work-dir", str(tmp_root / "bench-work")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, f"bench/encryption.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return results_dir


@pytest.fixture(scope="module")
def encryption_results(encryption_run: Path) -> dict[str, Any]:
    return json.loads((encryption_run / "encryption.json").read_text())


def test_encryption_bench_keeps_the_host_run_beside_the_image_run(encryption_results: dict[str, Any]) -> None:
    assert (sorted(encryption_results["runners"]), encryption_results["runners"]["host"]["date"]) == (
        ["host", "image"], HOST_FORMAT_1["date"])


def test_encryption_bench_measures_the_image_at_its_default_zstd(encryption_results: dict[str, Any]) -> None:
    image = encryption_results["runners"]["image"]
    assert ({(r["setting"], r["mode"]) for r in image["results"]}, image["runner"].startswith("job image")) == (
        {("zstd:1", "plain"), ("zstd:1", "age")}, True)


def test_encryption_bench_encrypted_runs_are_encrypted_and_plain_ones_are_not(encryption_results: dict[str, Any]) -> None:
    flags = {r["mode"]: (r["backup"].get("encrypted_to"), r["restore"].get("decrypted"))
             for r in encryption_results["runners"]["image"]["results"]}
    assert flags == {"plain": (None, False), "age": (1, True)}


def test_encryption_bench_sees_the_container_processes(encryption_results: dict[str, Any]) -> None:
    bad = [(r["mode"], phase, r[phase]) for r in encryption_results["runners"]["image"]["results"]
           for phase in ("backup", "restore")
           if not (_is_number(r[phase]["cpu_cli_s"]) and r[phase]["cpu_cli_s"] > 0 and r[phase]["peak_rss_main_mib"] > 20)]
    assert not bad


def test_encryption_bench_records_the_machine_load(encryption_results: dict[str, Any]) -> None:
    bad = [r for r in encryption_results["runners"]["image"]["results"]
           if not (_is_number(r["loadavg_1m_before"]) and _is_number(r["backup"]["cpu_other_s"])
                   and _is_number(r["restore"]["cpu_other_s"]))]
    assert not bad


def test_encryption_bench_table_has_a_row_per_phase_with_ratios(encryption_run: Path) -> None:
    rows = [line for line in (encryption_run / "encryption.md").read_text().splitlines()
            if line.startswith("| 5MB | zstd:1 | 1 / 1 |")]
    assert [row.split(" | ")[3] for row in rows] == ["backup", "restore"]


def _encryption_result(mode: str, repetition: int, seconds: float, rss: float) -> dict[str, Any]:
    record = {"seconds": seconds, "cpu_command_s": seconds / 2, "peak_rss_tree_mib": rss}
    return {"scale": "1GB", "setting": "zstd:1", "mode": mode, "repetition": repetition,
            "backup": record, "restore": record}


@pytest.mark.parametrize(("age_seconds", "age_rss", "expected"), [
    (10.9, 109.0, (True, True)),
    (11.2, 100.0, (False, True)),
    (10.0, 111.0, (True, False)),
], ids=["within", "time-missed", "rss-missed"])
def test_encryption_summary_judges_medians_against_the_targets(age_seconds: float, age_rss: float,
                                                               expected: tuple[bool, bool]) -> None:
    results = [_encryption_result("plain", r, s, 100.0) for r, s in enumerate((10.0, 9.0, 30.0))]
    results += [_encryption_result("age", r, s, age_rss) for r, s in enumerate((age_seconds, 5.0, 60.0))]
    (row,) = encryption.summarize(results)
    assert (row["backup"]["time_met"], row["backup"]["rss_met"]) == expected


def test_encryption_summary_ratio_is_of_the_medians() -> None:
    results = [_encryption_result("plain", 0, 10.0, 100.0), _encryption_result("plain", 1, 20.0, 100.0),
               _encryption_result("plain", 2, 12.0, 100.0), _encryption_result("age", 0, 13.2, 100.0)]
    (row,) = encryption.summarize(results)
    assert round(row["restore"]["time_ratio"], 3) == 1.1


def test_encryption_bench_alternates_which_mode_runs_first() -> None:
    assert [encryption.mode_order(r) for r in range(3)] == [("plain", "age"), ("age", "plain"), ("plain", "age")]


def test_encryption_bench_run_replaces_only_what_it_measured() -> None:
    document = encryption.load(Path("/nonexistent/encryption.json"))
    first = {"date": "1", "results": [_encryption_result("plain", 0, 1.0, 1.0) | {"scale": s} for s in ("100MB", "1GB")]}
    second = {"date": "2", "results": [_encryption_result("plain", 0, 2.0, 1.0) | {"scale": "1GB"}]}
    merged = encryption.merge(encryption.merge(document, "image", first), "image", second)
    kept = {(r["scale"], r["backup"]["seconds"]) for r in merged["runners"]["image"]["results"]}
    assert kept == {("100MB", 1.0), ("1GB", 2.0)}


def test_encryption_bench_refuses_an_unknown_setting() -> None:
    with pytest.raises(SystemExit):
        encryption.parse_args(["--settings", "zstd:9"])


def test_encryption_bench_render_reads_the_first_format(tmp_path: Path) -> None:
    (tmp_path / "encryption.json").write_text(json.dumps(HOST_FORMAT_1))
    encryption.main(["--render", "--results-dir", str(tmp_path)])
    document = json.loads((tmp_path / "encryption.json").read_text())
    assert (list(document["runners"]), document["runners"]["host"]["summary"][0]["backup"]["time_ratio"]) == (["host"], 1.0)


def test_encryption_bench_keeps_listing_a_first_format_run_whose_results_stay(tmp_path: Path) -> None:
    (tmp_path / "encryption.json").write_text(json.dumps(HOST_FORMAT_1))
    run = {"date": "new", "results": [_encryption_result("plain", 0, 1.0, 1.0) | {"scale": "1GB"}]}
    merged = encryption.merge(encryption.load(tmp_path / "encryption.json"), "host", run)
    assert [r["date"] for r in merged["runners"]["host"]["runs"]] == [HOST_FORMAT_1["date"], "new"]


def test_encryption_bench_refuses_a_patched_src_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        encryption.parse_args(["--patched-src", str(tmp_path / "missing")])

"""Turn a benchmark results file into the targets table, a markdown summary and plots.

    python bench/report.py bench/results/<date>.json [--update-docs]

re-renders the summary and plots of an existing results file (``run.py`` calls the same
functions after a run). Every ratio is computed twice: from the minimum and from the
median of the repetitions; a target is judged on the median (memory on the maximum).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

RESULTS_FORMAT = 2
MiB = 1024 * 1024
GB = 1000**3
#: issue 18's targets
DEFAULT_VS_TWO_STEP = 0.30
VS_FLOORS = 1.3
VS_FLOORS_FROM_BYTES = 1 * GB  # "at 1 GB": smaller databases are reported, not judged
RESTORE_VS_BASELINE = 1.10
STARTUP_S = 0.25
RSS_LIMIT_MIB = 150.0
DOCS_BEGIN = "<!-- BEGIN GENERATED: bench/run.sh --update-docs -->"
DOCS_END = "<!-- END GENERATED -->"
KIND_LABELS = {
    "limit_a": "limit A: pg_dump -Fc > /dev/null",
    "limit_b": "limit B: boto3 upload of the same bytes",
    "peer": "two-step: pg_dump to file + aws s3 cp",
    "ours": "agent-bom-backup backup",
    "restore_ours": "restore script (agent-bom-backup restore)",
    "restore_baseline": "boto3 download + pg_restore -j 2",
}


class ResultsFormatError(ValueError):
    """A results file this report cannot read (written by an older bench/run.py)."""


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "min": min(values) if values else None,
        "median": statistics.median(values) if values else None,
        "max": max(values) if values else None,
        "values": [round(v, 3) for v in values],
    }


def _seconds(entry: dict[str, Any] | None, kind: str) -> list[float]:
    return [float(r["seconds"]) for r in (entry or {}).get("runs", {}).get(kind, [])]


def _ratio(num: list[float], den: list[float]) -> dict[str, float] | None:
    if not num or not den:
        return None
    return {"min": min(num) / min(den), "median": statistics.median(num) / statistics.median(den)}


def _ratio_vs_max(num: list[float], a: list[float], b: list[float]) -> dict[str, float] | None:
    if not num or not a or not b:
        return None
    return {
        "min": min(num) / max(min(a), min(b)),
        "median": statistics.median(num) / max(statistics.median(a), statistics.median(b)),
    }


def _startup(entry: dict[str, Any] | None, name: str = "to_first_byte") -> list[float]:
    return [float(r["startup"][name]) for r in (entry or {}).get("runs", {}).get("ours", [])
            if name in r.get("startup", {})]


def _rss_values(entries: list[dict[str, Any]], kind: str, field: str) -> list[float]:
    return [float(r[field]) for e in entries for r in e["runs"].get(kind, [])]


def _by_key(scale: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["runner"], e["setting"]): e for e in scale["entries"]}


def _target(tid: str, text: str, scale: dict[str, Any], runner: str, setting: str | None,
            value: dict[str, float] | None, limit: float, unit: str = "x", judge: str = "median",
            applies: bool = True) -> dict[str, Any]:
    met = None
    if value is not None and applies:
        met = value[judge] <= limit
    return {
        "id": tid, "target": text, "s3": scale["s3"], "scale": scale["label"], "runner": runner, "setting": setting,
        "unit": unit, "value": {k: round(v, 3) for k, v in value.items()} if value else None,
        "limit": limit, "judged_on": judge, "applies": applies, "met": met,
    }


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 18's targets for each runner at its default, per S3 server and scale."""
    targets: list[dict[str, Any]] = []
    peer_default = results["pg_dump_default"]
    for scale in results["scales"]:
        by_key = _by_key(scale)
        reference = by_key.get(("host", peer_default))
        peer_bytes = [float(r["bytes"]) for r in (reference or {}).get("runs", {}).get("peer", []) if r.get("bytes")]
        large = scale["data"]["target_bytes"] >= VS_FLOORS_FROM_BYTES
        for runner in results["runners"]:
            name, default = runner["name"], runner["auto"]["setting"]
            entry = by_key.get((name, default))
            if entry is None:
                continue
            ours = _seconds(entry, "ours")
            ours_bytes = [float(r["bytes"]) for r in entry["runs"]["ours"] if r.get("bytes")]
            targets += [
                _target("default_vs_two_step",
                        f"backup at its default <= {DEFAULT_VS_TWO_STEP:.2f} x two-step at pg_dump's default "
                        f"({peer_default})", scale, name, default,
                        _ratio(ours, _seconds(reference, "peer")), DEFAULT_VS_TWO_STEP),
                _target("object_vs_two_step", "object no larger than the two-step's", scale, name, default,
                        _ratio(ours_bytes, peer_bytes), 1.0),
                _target("default_vs_floors",
                        f"backup at its default <= {VS_FLOORS} x max(limit A, limit B) (judged at 1 GB)", scale, name,
                        default, _ratio_vs_max(ours, _seconds(entry, "limit_a"), _seconds(entry, "limit_b")),
                        VS_FLOORS, applies=large),
                _target("restore_vs_baseline",
                        f"restore <= {RESTORE_VS_BASELINE:.2f} x (download + pg_restore -j 2)", scale, name, default,
                        _ratio(_seconds(entry, "restore_ours"), _seconds(entry, "restore_baseline")),
                        RESTORE_VS_BASELINE),
                _target("startup", f"process start to pg_dump's first byte <= {STARTUP_S} s", scale, name, default,
                        _median_min(_startup(entry)), STARTUP_S, unit="s"),
            ]
            runner_entries = [e for e in scale["entries"] if e["runner"] == name]
            for kind, what in (("ours", "backup"), ("restore_ours", "restore")):
                values = _rss_values(runner_entries, kind, "peak_rss_main_mib")
                if values:
                    targets.append(_target(
                        f"rss_{what}", f"peak RSS of the {what} CLI process <= {RSS_LIMIT_MIB:.0f} MiB (any setting)",
                        scale, name, None, {"median": statistics.median(values), "max": max(values)},
                        RSS_LIMIT_MIB, unit="MiB", judge="max"))
    return targets


def _median_min(values: list[float]) -> dict[str, float] | None:
    return {"median": statistics.median(values), "min": min(values)} if values else None


# ----------------------------------------------------------------------------- CPU budget
def cpu_components(record: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per component of one run: the command's processes, PostgreSQL, the S3 server."""
    cpu = record.get("cpu", {})
    parts = {key[5:-2]: value for key, value in cpu.items() if key.startswith("tree:") and value > 0}
    for key, value in cpu.items():
        if key.startswith("server:") and value > 0:
            parts[key[:-2]] = value
    return parts


def cpu_floor(parts: dict[str, float], cpus: int) -> float:
    """Shortest wall time the work fits in on ``cpus`` cores: each component is (at best)
    one core's worth of serial work, and all of it has to share the cores."""
    if not parts:
        return 0.0
    return max(max(parts.values()), sum(parts.values()) / cpus)


def _median_parts(records: list[dict[str, Any]]) -> dict[str, float]:
    names = {name for r in records for name in cpu_components(r)}
    return {name: statistics.median(cpu_components(r).get(name, 0.0) for r in records) for name in sorted(names)}


# ----------------------------------------------------------------------------- markdown
def _fmt_s(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.2f} ({min(values):.2f})"


def _fmt_ratio(value: dict[str, float] | None) -> str:
    if not value:
        return "–"
    return f"{value['median']:.2f} ({value['min']:.2f})"


def _mb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f} MB"


def _verdict(target: dict[str, Any]) -> str:
    if not target["applies"]:
        return "(reported)"
    if target["met"] is None:
        return "n/a"
    return "**met**" if target["met"] else "**MISSED**"


def _target_value(target: dict[str, Any]) -> str:
    value = target["value"]
    if value is None:
        return "–"
    if target["unit"] == "MiB":
        return f"max {value['max']:.0f} MiB (median {value['median']:.0f})"
    if target["unit"] == "s":
        return f"{value['median']:.2f} s (min {value['min']:.2f} s)"
    return f"{value['median']:.2f} x (min {value['min']:.2f} x)"


def _limit_text(target: dict[str, Any]) -> str:
    if target["unit"] == "MiB":
        return f"<= {target['limit']:.0f} MiB"
    if target["unit"] == "s":
        return f"<= {target['limit']:.2f} s"
    return f"<= {target['limit']:.2f} x"


def _phase_text(records: list[dict[str, Any]]) -> str:
    names: list[str] = []
    for record in records:
        for name in record.get("phases", {}):
            if name not in names:
                names.append(name)
    parts = []
    for name in names:
        values = [r["phases"][name] for r in records if name in r.get("phases", {})]
        parts.append(f"{name} {statistics.median(values):.2f}")
    return ", ".join(parts) or "–"


def _entry_name(entry: dict[str, Any]) -> str:
    return f"{entry['runner']} | {entry['setting']}{' (default)' if entry.get('is_default') else ''}"


def _runner_text(runner: dict[str, Any]) -> str:
    text = f"**{runner['name']}**: {runner['label']}; `auto` = **{runner['auto']['setting']}** ({runner['auto']['note']})"
    image = runner.get("image")
    if image:
        text += f"; image {image['tag']} ({image['id'][:12]}, {image['engine']})"
    return text


def summary_markdown(results: dict[str, Any], stem: str, image_prefix: str = "") -> str:
    host = results["host"]
    lines = [
        f"## Benchmark results: {stem}",
        "",
        (f"Run {results['date']} on {host['cpus']} CPUs / {host['memory_gib']} GiB (load average at start "
         f"{', '.join(str(x) for x in host['load_average_at_start'])}, at the end "
         f"{', '.join(str(x) for x in host.get('load_average_at_end', []))}), kernel {host['kernel']}; PostgreSQL server "
         f"{host['postgres_server']}; S3: {'; '.join(s['version'] for s in results['stores'])}; boto3 {host['boto3']}, "
         f"awscli {host['awscli']}; agent-bom-backup {host['agent_bom_backup']} at {host['git_commit']}"
         f"{' with PYTHONPATH=' + host['patched_src'] if host.get('patched_src') else ''}"
         f"{' and ' + ', '.join(host['cli_env']) if host.get('cli_env') else ''}. "
         f"{results['reps']} repetition(s) per measurement{' (quick mode)' if results['quick'] else ''}; "
         f"total run time {results.get('total_seconds', 0):.0f} s."),
        "",
        "Runners: " + "; ".join(_runner_text(r) for r in results["runners"]) + ".",
        "",
        ("Times are seconds, shown as **median (min)** over the repetitions; ratios likewise (median ratio = ratio of "
         "medians, min ratio = ratio of minimums). The two-step reference is the host's pg_dump of the server's "
         f"major at pg_dump's default ({results['pg_dump_default']}) plus `aws s3 cp`."),
    ]
    for item in results.get("unavailable", []):
        lines.append(f"Not measured: **{item['runner']} {item['setting']}** — {item['reason']}.")
    lines += ["", "### Targets", "",
              "| target | S3 | scale | runner | setting | measured | limit | result |",
              "|---|---|---|---|---|---|---|---|"]
    for target in results.get("targets", []):
        lines.append(f"| {target['target']} | {target['s3']} | {target['scale']} | {target['runner']} | "
                     f"{target['setting'] or '–'} | {_target_value(target)} | {_limit_text(target)} | "
                     f"{_verdict(target)} |")
    for scale in results["scales"]:
        lines += _scale_markdown(results, scale)
    lines += [
        "",
        ("Disk: the backup streams pg_dump's output straight into the multipart upload and writes nothing "
         "locally; the restore downloads the dump into its scratch directory first (so pg_restore can run "
         "in parallel): it needs free space of the dump's size plus 16 MiB (the dump sizes above)."),
        "",
    ]
    for plot, title in PLOTS.items():
        lines += [f"![{title}]({image_prefix}{stem}-{plot}.png)", ""]
    return "\n".join(lines)


def _scale_markdown(results: dict[str, Any], scale: dict[str, Any]) -> list[str]:
    data = scale["data"]
    entries = scale["entries"]
    reference = _by_key(scale).get(("host", results["pg_dump_default"]))
    peer = _seconds(reference, "peer")
    lines = [
        "",
        (f"### {scale['s3']}, {scale['label']}: database {_mb(data['database_bytes'])}, {data['audit_rows']:,} audit "
         f"rows, {len(data['tenant_rows'])} tenants"),
        "",
        f"Backup (seconds; two-step at {results['pg_dump_default']}: {_fmt_s(peer)}):",
        "",
        ("| runner | setting | dump size | limit A: pg_dump > /dev/null | limit B: upload alone | two-step (dump + "
         "aws s3 cp) | ours | ours / two-step at pg_dump's default | ours / max(A, B) | start-up to pg_dump's first byte |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        runs = entry["runs"]
        peer_text = _fmt_s(_seconds(entry, "peer"))
        if runs.get("peer"):
            peer_text += (f" = {statistics.median(r['dump_seconds'] for r in runs['peer']):.2f} + "
                          f"{statistics.median(r['upload_seconds'] for r in runs['peer']):.2f}")
        ours = _seconds(entry, "ours")
        lines.append(
            f"| {_entry_name(entry)} | {_mb(entry.get('dump_bytes'))} | {_fmt_s(_seconds(entry, 'limit_a'))} | "
            f"{_fmt_s(_seconds(entry, 'limit_b'))} | {peer_text} | {_fmt_s(ours)} | {_fmt_ratio(_ratio(ours, peer))} | "
            f"{_fmt_ratio(_ratio_vs_max(ours, _seconds(entry, 'limit_a'), _seconds(entry, 'limit_b')))} | "
            f"{_fmt_s(_startup(entry))} |")
    store = next((s for s in results["stores"] if s["name"] == scale["s3"]), {})
    download = "one GET" if store.get("download") == "single" else "boto3's parallel ranged GETs"
    lines += [
        "",
        f"Restore into a fresh empty database (seconds; the baseline downloads with {download}):",
        "",
        ("| runner | setting | dump size | baseline: download + pg_restore -j 2 | ours: restore script (download, "
         "SHA-256, checks, pg_restore -j 2, verification, report) | ours / baseline |"),
        "|---|---|---|---|---|---|",
    ]
    for entry in entries:
        base = entry["runs"]["restore_baseline"]
        base_text = _fmt_s(_seconds(entry, "restore_baseline"))
        if base:
            base_text += (f" = {statistics.median(r['download_seconds'] for r in base):.2f} + "
                          f"{statistics.median(r['pg_restore_seconds'] for r in base):.2f}")
        lines.append(
            f"| {_entry_name(entry)} | {_mb(entry.get('dump_bytes'))} | {base_text} | "
            f"{_fmt_s(_seconds(entry, 'restore_ours'))} | "
            f"{_fmt_ratio(_ratio(_seconds(entry, 'restore_ours'), _seconds(entry, 'restore_baseline')))} |")
    startup = scale.get("container_startup_s")
    if startup and startup.get("n"):
        lines += ["", (f"Container start-up (`podman run` of `true`, inside every image time above except limit A): "
                       f"{startup['median']:.2f} s (min {startup['min']:.2f} s).")]
    shares = [r["cpu"]["other_s"] / r["cpu"]["capacity_s"] for e in entries for runs in e["runs"].values()
              for r in runs if r.get("cpu", {}).get("capacity_s")]
    if shares:
        waits = [r["cpu"].get("quiet_wait_s", 0.0) for e in entries for runs in e["runs"].values() for r in runs
                 if r.get("cpu")]
        wait_text = (f" Each command started once the machine was quiet (waited {sum(waits):.0f} s in all, "
                     f"at most {results.get('quiet_wait_s', 0):.0f} s per command)." if results.get("quiet_wait_s")
                     else "")
        lines += ["", (f"Noise: processes outside the benchmark (other work on this shared machine, VM steal) used a "
                       f"median {statistics.median(shares):.0%} (max {max(shares):.0%}) of the "
                       f"{results['host']['cpus']} CPUs' capacity during these measurements.{wait_text}")]
    lines += ["", "Where our time goes (median seconds per phase, from the CLI's own log timestamps; in the image "
                  "the start-up includes the container's):", ""]
    for entry in entries:
        lines.append(f"- {_entry_name(entry)}: backup: {_phase_text(entry['runs']['ours'])}; "
                     f"restore: {_phase_text(entry['runs']['restore_ours'])}")
    cpus = results["host"]["cpus"] or 1
    lines += [
        "",
        (f"CPU budget (median CPU seconds per component; floor = the shortest wall time that work fits in on "
         f"{cpus} cores, max(largest component, sum / {cpus})): here PostgreSQL and the S3 server run on the same "
         "cores as pg_dump and the CLI; in production both are remote."),
        "",
        "| runner | setting | limit A | limit B | ours | floor A / B / ours | floor ratio ours / max(A, B) | measured ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        parts = {kind: _median_parts(entry["runs"][kind]) for kind in ("limit_a", "limit_b", "ours")}
        floors = {kind: cpu_floor(p, cpus) for kind, p in parts.items()}
        text = {kind: " + ".join(f"{name} {value:.1f}" for name, value in p.items()) or "–" for kind, p in parts.items()}
        floor_ratio = floors["ours"] / max(floors["limit_a"], floors["limit_b"]) if max(floors.values()) else 0
        lines.append(
            f"| {_entry_name(entry)} | {text['limit_a']} | {text['limit_b']} | {text['ours']} | "
            f"{floors['limit_a']:.1f} / {floors['limit_b']:.1f} / {floors['ours']:.1f} | {floor_ratio:.2f} | "
            f"{_fmt_ratio(_ratio_vs_max(_seconds(entry, 'ours'), _seconds(entry, 'limit_a'), _seconds(entry, 'limit_b')))} |")
    lines += ["", "Peak RSS (MiB, max over every run at this scale; in the image: the container's processes):", "",
              "| runner | process | CLI / first process | whole tree |", "|---|---|---|---|"]
    for runner in results["runners"]:
        runner_entries = [e for e in entries if e["runner"] == runner["name"]]
        for kind in ("ours", "restore_ours", "peer", "limit_b", "restore_baseline"):
            main = _rss_values(runner_entries, kind, "peak_rss_main_mib")
            tree = _rss_values(runner_entries, kind, "peak_rss_tree_mib")
            if main:
                lines.append(f"| {runner['name']} | {KIND_LABELS[kind]} | {max(main):.0f} | {max(tree):.0f} |")
    return lines


# ----------------------------------------------------------------------------- plots
PLOTS = {
    "backup": "backup times",
    "restore": "restore times",
    "compression": "compression: size vs time",
    "memory": "peak memory",
    "rss": "RSS over time",
}


def write_plots(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = results["scales"]
    paths: list[Path] = []
    colors = {"limit_a": "#9e9e9e", "limit_b": "#cfcfcf", "peer": "#e07b39", "ours": "#2f6db5",
              "restore_baseline": "#e07b39", "restore_ours": "#2f6db5"}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out_dir / f"{stem}-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    def subplots() -> tuple[Any, list[Any]]:
        fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 4.4), squeeze=False)
        return fig, list(axes[0])

    def bars(kinds: tuple[str, ...], title: str, name: str) -> None:
        fig, axes = subplots()
        for ax, scale in zip(axes, groups):
            entries = scale["entries"]
            width = 0.8 / len(kinds)
            for i, kind in enumerate(kinds):
                xs, med, mins = [], [], []
                for j, entry in enumerate(entries):
                    values = _seconds(entry, kind)
                    if values:
                        xs.append(j + (i - (len(kinds) - 1) / 2) * width)
                        med.append(statistics.median(values))
                        mins.append(min(values))
                ax.bar(xs, med, width, label=KIND_LABELS[kind], color=colors[kind], edgecolor="black", linewidth=0.4)
                ax.plot(xs, mins, "k.", markersize=5)
            ax.set_xticks(range(len(entries)))
            ax.set_xticklabels([f"{e['runner']}\n{e['setting']}" + ("\n(default)" if e.get("is_default") else "")
                                for e in entries], fontsize=8)
            ax.set_ylabel("seconds (bar: median, dot: min)")
            ax.set_title(f"{title}, {scale['s3']}, {scale['label']}")
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=7, loc="upper right")
        save(fig, name)

    bars(("limit_a", "limit_b", "peer", "ours"), "Backup", "backup")
    bars(("restore_baseline", "restore_ours"), "Restore", "restore")

    # compression trade-off: dump size vs our backup and restore time
    fig, axes = subplots()
    for ax, scale in zip(axes, groups):
        for kind, marker in (("ours", "o"), ("restore_ours", "s")):
            for entry in scale["entries"]:
                values = _seconds(entry, kind)
                if values and entry.get("dump_bytes"):
                    x = entry["dump_bytes"] / 1e6
                    ax.plot(x, statistics.median(values), marker, color=colors[kind],
                            label=KIND_LABELS[kind] if entry is scale["entries"][0] else None)
                    ax.annotate(f"{entry['runner']} {entry['setting']}", (x, statistics.median(values)), fontsize=7,
                                xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("dump size (MB)")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"Compression: size vs time, {scale['s3']}, {scale['label']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, "compression")

    # peak memory per runner and group
    fig, ax = plt.subplots(figsize=(9, 4.4))
    kinds = [("ours", "peak_rss_main_mib", "backup CLI"), ("ours", "peak_rss_tree_mib", "backup tree"),
             ("restore_ours", "peak_rss_main_mib", "restore CLI"), ("restore_ours", "peak_rss_tree_mib", "restore tree"),
             ("peer", "peak_rss_tree_mib", "two-step tree"),
             ("restore_baseline", "peak_rss_tree_mib", "baseline restore tree")]
    series = [(scale, runner["name"]) for scale in groups for runner in results["runners"]]
    width = 0.8 / max(1, len(series))
    for i, (scale, runner) in enumerate(series):
        entries = [e for e in scale["entries"] if e["runner"] == runner]
        xs, ys = [], []
        for j, (kind, field, _) in enumerate(kinds):
            values = _rss_values(entries, kind, field)
            if values:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(max(values))
        ax.bar(xs, ys, width, label=f"{runner}, {scale['s3']} {scale['label']}", edgecolor="black", linewidth=0.4)
    ax.axhline(RSS_LIMIT_MIB, color="red", linestyle="--", linewidth=1, label=f"target {RSS_LIMIT_MIB:.0f} MiB (CLI)")
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels([k[2] for k in kinds], fontsize=8)
    ax.set_ylabel("peak RSS (MiB, max over runs)")
    ax.set_title("Peak memory")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "memory")

    # RSS timeline of one backup per runner, group and setting (the default's last repetition)
    fig, ax = plt.subplots(figsize=(9, 4.4))
    for scale in groups:
        for entry in scale["entries"]:
            for record in entry["runs"]["ours"]:
                samples = record.get("samples")
                if samples:
                    ts = [s[0] for s in samples]
                    label = f"{entry['runner']} {entry['setting']}, {scale['s3']} {scale['label']}"
                    ax.plot(ts, [s[1] for s in samples], label=f"{label}: CLI")
                    ax.plot(ts, [s[2] for s in samples], linestyle=":", label=f"{label}: tree")
    ax.axhline(RSS_LIMIT_MIB, color="red", linestyle="--", linewidth=1)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("agent-bom-backup backup at its default: RSS over time (sampled at 20 Hz)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "rss")
    return paths


def check_format(results: dict[str, Any]) -> None:
    if results.get("format") != RESULTS_FORMAT:
        raise ResultsFormatError(
            f"results format {results.get('format')!r}, this report reads format {RESULTS_FORMAT}: "
            "re-run bench/run.sh (older raw files are published as the bench workflow's artifacts)")


def write_summary(results: dict[str, Any], out_dir: Path, stem: str) -> Path:
    check_format(results)
    write_plots(results, out_dir, stem)
    path = out_dir / f"{stem}.md"
    path.write_text(summary_markdown(results, stem) + "\n")
    return path


def update_docs(doc: Path, summary: Path) -> Path:
    """Replace the generated block of ``doc`` with ``summary`` (image links made relative to ``doc``)."""
    import os

    results = json.loads(summary.with_suffix(".json").read_text())
    prefix = os.path.relpath(summary.parent, doc.parent).replace(os.sep, "/") + "/"
    block = f"{DOCS_BEGIN}\n{summary_markdown(results, summary.stem, image_prefix=prefix)}\n{DOCS_END}"
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{DOCS_BEGIN}\n{DOCS_END}\n"
    if DOCS_BEGIN not in text or DOCS_END not in text:
        text = text.rstrip("\n") + f"\n\n{DOCS_BEGIN}\n{DOCS_END}\n"
    pattern = re.compile(re.escape(DOCS_BEGIN) + ".*?" + re.escape(DOCS_END), re.DOTALL)
    doc.write_text(pattern.sub(lambda _m: block, text, count=1))
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-render the summary and plots of a results file.")
    parser.add_argument("results", type=Path)
    parser.add_argument("--update-docs", action="store_true")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    try:
        check_format(results)
    except ResultsFormatError as exc:
        parser.error(str(exc))
    results["targets"] = evaluate_targets(results)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    summary = write_summary(results, args.results.parent, args.results.stem)
    print(summary)
    if args.update_docs:
        print(update_docs(Path(__file__).resolve().parents[1] / "docs" / "performance.md", summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

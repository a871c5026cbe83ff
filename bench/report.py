"""Turn a benchmark results file into the targets table, a markdown summary and plots.

    python bench/report.py bench/results/<date>.json [--update-docs]

re-renders the summary and plots of an existing results file (``run.py`` calls the same
functions after a run). Every ratio is computed twice: from the minimum and from the
median of the repetitions; a target is judged on the median.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
RSS_LIMIT_MIB = 150.0
RSS_GROWTH_LIMIT = 0.20
DEFAULT_VS_PEER_LIMIT = 0.5
VS_LIMITS_LIMIT = 1.15
RESTORE_LIMIT = 1.15
DOCS_BEGIN = "<!-- BEGIN GENERATED: bench/run.sh --update-docs -->"
DOCS_END = "<!-- END GENERATED -->"
KIND_LABELS = {
    "limit_a": "limit A: pg_dump -Fc > /dev/null",
    "limit_b": "limit B: boto3 upload_file",
    "peer": "two-step: pg_dump to file + aws s3 cp",
    "ours": "agent-bom-backup backup",
    "restore_ours": "agent-bom-backup restore",
    "restore_baseline": "boto3 download_file + pg_restore -j 2",
}


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "min": min(values) if values else None,
        "median": statistics.median(values) if values else None,
        "max": max(values) if values else None,
        "values": [round(v, 3) for v in values],
    }


def _seconds(entry: dict[str, Any], kind: str) -> list[float]:
    return [float(r["seconds"]) for r in entry["runs"].get(kind, [])]


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


def _target(tid: str, text: str, scale: str, setting: str | None, value: dict[str, float] | None,
            limit: float, strict: bool = False, unit: str = "x", judge: str = "median") -> dict[str, Any]:
    met = None
    if value is not None:
        measured = value[judge]
        met = measured < limit if strict else measured <= limit
    return {
        "id": tid, "target": text, "scale": scale, "setting": setting, "unit": unit,
        "value": {k: round(v, 3) for k, v in value.items()} if value else None,
        "limit": limit, "strict": strict, "judged_on": judge, "met": met,
    }


def _rss_values(entry_list: list[dict[str, Any]], kind: str, field: str) -> list[float]:
    return [float(r[field]) for e in entry_list for r in e["runs"].get(kind, [])]


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    default = results["ours_default"]["setting"]
    peer_default = results.get("pg_dump_default", "gzip:6")
    for scale in results["scales"]:
        label = scale["label"]
        by_name = {e["setting"]: e for e in scale["settings"]}
        if default in by_name and peer_default in by_name:
            targets.append(_target(
                "default_vs_two_step",
                f"ours at our default ({default}) <= {DEFAULT_VS_PEER_LIMIT} x two-step at pg_dump's default ({peer_default})",
                label, default, _ratio(_seconds(by_name[default], "ours"), _seconds(by_name[peer_default], "peer")),
                DEFAULT_VS_PEER_LIMIT))
        for entry in scale["settings"]:
            name = entry["setting"]
            targets.append(_target("faster_than_two_step", "ours strictly faster than two-step at the same setting",
                                   label, name, _ratio(_seconds(entry, "ours"), _seconds(entry, "peer")), 1.0,
                                   strict=True))
            targets.append(_target("near_limits", f"ours <= {VS_LIMITS_LIMIT} x max(limit A, limit B)", label, name,
                                   _ratio_vs_max(_seconds(entry, "ours"), _seconds(entry, "limit_a"),
                                                 _seconds(entry, "limit_b")), VS_LIMITS_LIMIT))
            targets.append(_target("restore_vs_baseline",
                                   f"restore <= {RESTORE_LIMIT} x download + pg_restore -j 2", label, name,
                                   _ratio(_seconds(entry, "restore_ours"), _seconds(entry, "restore_baseline")),
                                   RESTORE_LIMIT))
        for kind, what in (("ours", "backup"), ("restore_ours", "restore")):
            values = _rss_values(scale["settings"], kind, "peak_rss_main_mib")
            if values:
                targets.append(_target(
                    f"rss_{what}", f"peak RSS of the {what} CLI process <= {RSS_LIMIT_MIB:.0f} MiB", label, None,
                    {"median": statistics.median(values), "max": max(values)}, RSS_LIMIT_MIB, unit="MiB",
                    judge="max"))
    scales = results["scales"]
    if len(scales) >= 2:
        small, large = scales[0], scales[-1]
        for kind, what in (("ours", "backup"), ("restore_ours", "restore")):
            for name in [e["setting"] for e in large["settings"]]:
                a = _rss_values([e for e in small["settings"] if e["setting"] == name], kind, "peak_rss_main_mib")
                b = _rss_values([e for e in large["settings"] if e["setting"] == name], kind, "peak_rss_main_mib")
                if a and b:
                    growth = {"median": statistics.median(b) / statistics.median(a) - 1, "max": max(b) / max(a) - 1}
                    targets.append(_target(
                        f"rss_growth_{what}",
                        f"peak RSS of the {what} CLI grows < {RSS_GROWTH_LIMIT:.0%} from {small['label']} to "
                        f"{large['label']}", f"{small['label']}->{large['label']}", name, growth, RSS_GROWTH_LIMIT,
                        strict=True, unit="growth", judge="max"))
    return targets


# ----------------------------------------------------------------------------- CPU budget
def cpu_components(record: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per component of one run: the command's processes, PostgreSQL, moto."""
    cpu = record.get("cpu", {})
    parts = {key[5:-2]: value for key, value in cpu.items() if key.startswith("tree:") and value > 0}
    for server in ("postgres", "moto"):
        if cpu.get(f"{server}_s", 0) > 0:
            parts[f"server:{server}"] = cpu[f"{server}_s"]
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
    if target["met"] is None:
        return "n/a"
    return "**met**" if target["met"] else "**MISSED**"


def _target_value(target: dict[str, Any]) -> str:
    value = target["value"]
    if value is None:
        return "–"
    if target["unit"] == "MiB":
        return f"max {value['max']:.0f} MiB (median {value['median']:.0f})"
    if target["unit"] == "growth":
        return f"{value['max']:+.1%} (medians {value['median']:+.1%})"
    return f"{value['median']:.2f} x (min {value['min']:.2f} x)"


def _limit_text(target: dict[str, Any]) -> str:
    op = "<" if target["strict"] else "<="
    if target["unit"] == "MiB":
        return f"{op} {target['limit']:.0f} MiB"
    if target["unit"] == "growth":
        return f"{op} {target['limit']:.0%}"
    return f"{op} {target['limit']:.2f} x"


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


def summary_markdown(results: dict[str, Any], stem: str, image_prefix: str = "") -> str:
    host = results["host"]
    default = results["ours_default"]
    lines = [
        f"## Benchmark results: {stem}",
        "",
        (f"Run {results['date']} on {host['cpus']} CPUs / {host['memory_gib']} GiB (load average at start "
        f"{', '.join(str(x) for x in host['load_average_at_start'])}, at the end "
        f"{', '.join(str(x) for x in host.get('load_average_at_end', []))}), kernel {host['kernel']}; PostgreSQL server "
        f"{host['postgres_server']}, pg_dump/pg_restore {host['pg_dump']}; moto {host['moto']} (local S3 server, in "
        f"memory), boto3 {host['boto3']}, awscli {host['awscli']}; agent-bom-backup {host['agent_bom_backup']} at "
        f"{host['git_commit']}{' with PYTHONPATH=' + host['patched_src'] if host.get('patched_src') else ''}. "
        f"{results['reps']} repetition(s) per measurement{' (quick mode)' if results['quick'] else ''}; "
        f"total run time {results.get('total_seconds', 0):.0f} s."),
        "",
        (f"Times are seconds, shown as **median (min)** over the repetitions; ratios likewise "
        f"(median ratio = ratio of medians, min ratio = ratio of minimums). Our default compression "
        f"`auto` resolved to **{default['setting']}** here ({default['note']})."),
    ]
    for item in results.get("unavailable", []):
        lines.append(f"Not measured: **{item['setting']}** — {item['reason']}.")
    lines += ["", "### Targets", "", "| target | scale | setting | measured | limit | result |", "|---|---|---|---|---|---|"]
    for target in results.get("targets", []):
        lines.append(f"| {target['target']} | {target['scale']} | {target['setting'] or '–'} | "
                     f"{_target_value(target)} | {_limit_text(target)} | {_verdict(target)} |")
    for scale in results["scales"]:
        data = scale["data"]
        lines += [
            "",
            (f"### {scale['label']}: database {_mb(data['database_bytes'])}, {data['audit_rows']:,} audit rows, "
            f"{len(data['tenant_rows'])} tenants"),
            "",
            "Backup (seconds):",
            "",
            ("| setting | dump size | limit A: pg_dump > /dev/null | limit B: boto3 upload | two-step (dump + aws s3 cp) "
            "| ours | ours / two-step | ours / max(A, B) |"),
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in scale["settings"]:
            runs = entry["runs"]
            peer = runs["peer"]
            peer_text = _fmt_s(_seconds(entry, "peer"))
            if peer:
                peer_text += (f" = {statistics.median(r['dump_seconds'] for r in peer):.2f} + "
                              f"{statistics.median(r['upload_seconds'] for r in peer):.2f}")
            name = entry["setting"] + (" (our default)" if entry.get("ours_is_default") else "")
            lines.append(
                f"| {name} | {_mb(entry.get('dump_bytes'))} | {_fmt_s(_seconds(entry, 'limit_a'))} | "
                f"{_fmt_s(_seconds(entry, 'limit_b'))} | {peer_text} | {_fmt_s(_seconds(entry, 'ours'))} | "
                f"{_fmt_ratio(_ratio(_seconds(entry, 'ours'), _seconds(entry, 'peer')))} | "
                f"{_fmt_ratio(_ratio_vs_max(_seconds(entry, 'ours'), _seconds(entry, 'limit_a'), _seconds(entry, 'limit_b')))} |"
            )
        lines += [
            "",
            "Restore into a fresh empty database (seconds):",
            "",
            ("| setting | dump size | baseline: download + pg_restore -j 2 | ours (download, SHA-256, checks, pg_restore -j 2, "
            "verification) | ours / baseline |"),
            "|---|---|---|---|---|",
        ]
        for entry in scale["settings"]:
            base = entry["runs"]["restore_baseline"]
            base_text = _fmt_s(_seconds(entry, "restore_baseline"))
            if base:
                base_text += (f" = {statistics.median(r['download_seconds'] for r in base):.2f} + "
                              f"{statistics.median(r['pg_restore_seconds'] for r in base):.2f}")
            lines.append(
                f"| {entry['setting']} | {_mb(entry.get('dump_bytes'))} | {base_text} | "
                f"{_fmt_s(_seconds(entry, 'restore_ours'))} | "
                f"{_fmt_ratio(_ratio(_seconds(entry, 'restore_ours'), _seconds(entry, 'restore_baseline')))} |"
            )
        shares = [r["cpu"]["other_s"] / r["cpu"]["capacity_s"]
                  for e in scale["settings"] for runs in e["runs"].values() for r in runs
                  if r.get("cpu", {}).get("capacity_s")]
        if shares:
            waits = [r["cpu"].get("quiet_wait_s", 0.0) for e in scale["settings"] for runs in e["runs"].values()
                     for r in runs if r.get("cpu")]
            wait_text = (f" Each command started once the machine was quiet (waited {sum(waits):.0f} s in all, "
                         f"at most {results.get('quiet_wait_s', 0):.0f} s per command)."
                         if results.get("quiet_wait_s") else "")
            noise = (f"Noise: processes outside the benchmark (other work on this shared machine, VM steal) "
                     f"used a median {statistics.median(shares):.0%} (max {max(shares):.0%}) of the "
                     f"{results['host']['cpus']} CPUs' capacity during these measurements.{wait_text}")
            lines += ["", noise]
        lines += ["", "Where our time goes (median seconds per phase, from the CLI's own log timestamps):", ""]
        for entry in scale["settings"]:
            lines.append(f"- {entry['setting']}: backup: {_phase_text(entry['runs']['ours'])}; "
                         f"restore: {_phase_text(entry['runs']['restore_ours'])}")
        cpus = results["host"]["cpus"] or 1
        lines += [
            "",
            (f"CPU budget (median CPU seconds per component; floor = the shortest wall time that work fits in on "
            f"{cpus} cores, max(largest component, sum / {cpus})): on this host the S3 server (moto) and "
            "PostgreSQL run on the same cores as pg_dump and the CLI; in production both are remote."),
            "",
            "| setting | limit A | limit B | ours | floor A / B / ours | floor ratio ours / max(A, B) | measured ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for entry in scale["settings"]:
            parts = {kind: _median_parts(entry["runs"][kind]) for kind in ("limit_a", "limit_b", "ours")}
            floors = {kind: cpu_floor(p, cpus) for kind, p in parts.items()}
            text = {kind: " + ".join(f"{name} {value:.1f}" for name, value in p.items()) or "–"
                    for kind, p in parts.items()}
            floor_ratio = floors["ours"] / max(floors["limit_a"], floors["limit_b"]) if max(floors.values()) else 0
            lines.append(
                f"| {entry['setting']} | {text['limit_a']} | {text['limit_b']} | {text['ours']} | "
                f"{floors['limit_a']:.1f} / {floors['limit_b']:.1f} / {floors['ours']:.1f} | {floor_ratio:.2f} | "
                f"{_fmt_ratio(_ratio_vs_max(_seconds(entry, 'ours'), _seconds(entry, 'limit_a'), _seconds(entry, 'limit_b')))} |"
            )
        estimates = scale.get("compressor_estimates") or []
        if estimates:
            lines += [
                "",
                ("Compressors over the uncompressed dump (command-line tools, one run; an estimate of what the "
                "settings this pg_dump lacks would cost — pg_dump's gzip is the same deflate as gzip -N):"),
                "",
                "| compressor | input | output | ratio | CPU seconds | CPU seconds per GB of input |",
                "|---|---|---|---|---|---|",
            ]
            for row in estimates:
                lines.append(
                    f"| {row['tool']} | {_mb(row['input_bytes'])} | {_mb(row['output_bytes'])} | "
                    f"{row['input_bytes'] / max(row['output_bytes'], 1):.1f} | {row['cpu_s']:.2f} | "
                    f"{row['cpu_s'] / (row['input_bytes'] / 1e9):.2f} |")
        lines += [
            "",
            "Peak RSS (MiB, max over every run at this scale):",
            "",
            "| process | CLI / first process | whole tree |",
            "|---|---|---|",
        ]
        for kind in ("ours", "restore_ours", "peer", "limit_b", "restore_baseline"):
            main = _rss_values(scale["settings"], kind, "peak_rss_main_mib")
            tree = _rss_values(scale["settings"], kind, "peak_rss_tree_mib")
            if main:
                lines.append(f"| {KIND_LABELS[kind]} | {max(main):.0f} | {max(tree):.0f} |")
    lines += [
        "",
        ("Disk: the backup streams pg_dump's output straight into the multipart upload and writes nothing "
        "locally; the restore downloads the dump into its scratch directory first (so pg_restore can run "
        "in parallel): it needs free space of the dump's size plus 16 MiB (the dump sizes above)."),
        "",
        f"![backup times]({image_prefix}{stem}-backup.png)",
        "",
        f"![restore times]({image_prefix}{stem}-restore.png)",
        "",
        f"![compression: size vs time]({image_prefix}{stem}-compression.png)",
        "",
        f"![peak memory]({image_prefix}{stem}-memory.png)",
        "",
        f"![RSS over time]({image_prefix}{stem}-rss.png)",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def write_plots(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = results["scales"]
    paths: list[Path] = []
    colors = {"limit_a": "#9e9e9e", "limit_b": "#cfcfcf", "peer": "#e07b39", "ours": "#2f6db5",
              "restore_baseline": "#e07b39", "restore_ours": "#2f6db5"}

    def bars(kinds: tuple[str, ...], title: str, name: str) -> None:
        fig, axes = plt.subplots(1, len(scales), figsize=(6.5 * len(scales), 4.2), squeeze=False)
        for ax, scale in zip(axes[0], scales):
            settings = scale["settings"]
            width = 0.8 / len(kinds)
            for i, kind in enumerate(kinds):
                xs, med, mins = [], [], []
                for j, entry in enumerate(settings):
                    values = _seconds(entry, kind)
                    if values:
                        xs.append(j + (i - (len(kinds) - 1) / 2) * width)
                        med.append(statistics.median(values))
                        mins.append(min(values))
                ax.bar(xs, med, width, label=KIND_LABELS[kind], color=colors[kind], edgecolor="black", linewidth=0.4)
                ax.plot(xs, mins, "k.", markersize=5)
            ax.set_xticks(range(len(settings)))
            ax.set_xticklabels([e["setting"] + ("\n(our default)" if e.get("ours_is_default") else "")
                                for e in settings])
            ax.set_ylabel("seconds (bar: median, dot: min)")
            ax.set_title(f"{title}, {scale['label']} database")
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        path = out_dir / f"{stem}-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    bars(("limit_a", "limit_b", "peer", "ours"), "Backup", "backup")
    bars(("restore_baseline", "restore_ours"), "Restore", "restore")

    # compression trade-off: dump size vs our backup and restore time
    fig, axes = plt.subplots(1, len(scales), figsize=(6.5 * len(scales), 4.2), squeeze=False)
    for ax, scale in zip(axes[0], scales):
        for kind, marker in (("ours", "o"), ("restore_ours", "s")):
            for entry in scale["settings"]:
                values = _seconds(entry, kind)
                if values and entry.get("dump_bytes"):
                    x = entry["dump_bytes"] / 1e6
                    ax.plot(x, statistics.median(values), marker, color=colors[kind],
                            label=KIND_LABELS[kind] if entry is scale["settings"][0] else None)
                    ax.annotate(entry["setting"], (x, statistics.median(values)), fontsize=8,
                                xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("dump size (MB)")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"Compression: size vs time, {scale['label']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{stem}-compression.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    # peak memory per scale
    fig, ax = plt.subplots(figsize=(8, 4.2))
    groups = [("ours", "peak_rss_main_mib", "backup CLI"), ("ours", "peak_rss_tree_mib", "backup tree"),
              ("restore_ours", "peak_rss_main_mib", "restore CLI"), ("restore_ours", "peak_rss_tree_mib", "restore tree"),
              ("peer", "peak_rss_tree_mib", "two-step tree"), ("restore_baseline", "peak_rss_tree_mib", "baseline restore tree")]
    width = 0.8 / max(1, len(scales))
    for i, scale in enumerate(scales):
        xs, ys = [], []
        for j, (kind, field, _) in enumerate(groups):
            values = _rss_values(scale["settings"], kind, field)
            if values:
                xs.append(j + (i - (len(scales) - 1) / 2) * width)
                ys.append(max(values))
        ax.bar(xs, ys, width, label=scale["label"], edgecolor="black", linewidth=0.4)
    ax.axhline(RSS_LIMIT_MIB, color="red", linestyle="--", linewidth=1, label=f"target {RSS_LIMIT_MIB:.0f} MiB (CLI)")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[2] for g in groups], fontsize=8)
    ax.set_ylabel("peak RSS (MiB, max over runs)")
    ax.set_title("Peak memory")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{stem}-memory.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    # RSS timeline of one backup per scale
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for scale in scales:
        for entry in scale["settings"]:
            for record in entry["runs"]["ours"]:
                samples = record.get("samples")
                if samples:
                    ts = [s[0] for s in samples]
                    ax.plot(ts, [s[1] for s in samples], label=f"{scale['label']} {entry['setting']}: CLI")
                    ax.plot(ts, [s[2] for s in samples], linestyle=":", label=f"{scale['label']} {entry['setting']}: tree")
    ax.axhline(RSS_LIMIT_MIB, color="red", linestyle="--", linewidth=1)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("agent-bom-backup backup: RSS over time (sampled at 20 Hz)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{stem}-rss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def write_summary(results: dict[str, Any], out_dir: Path, stem: str) -> Path:
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
    results["targets"] = evaluate_targets(results)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    summary = write_summary(results, args.results.parent, args.results.stem)
    print(summary)
    if args.update_docs:
        print(update_docs(Path(__file__).resolve().parents[1] / "docs" / "performance.md", summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

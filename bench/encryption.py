"""The cost of client-side age encryption (issue 30): backup and restore with and without it.

For each scale (a generated database of ~N bytes, ``datagen``) and compression setting, a
runner (``runners.py``: the job image as the chart runs it, by default, or the host CLI)
backs up to the S3 server with and without ``AGENT_BOM_BACKUP_ENCRYPT_TO``, and the
runbook's restore script restores each backup into a fresh database (with
``AGENT_BOM_RESTORE_IDENTITY_FILE`` for the encrypted one; in the image the script mounts
the identity file read-only). Plain and encrypted alternate within each repetition (plain
first in even repetitions, encrypted first in odd ones) so that a change in the machine's
load hits both. Wall time, peak RSS of the process tree (in the image: the container's
processes) and CPU seconds are measured as ``bench/run.py`` does (``measure.run``), with the
machine's load average before each measurement and the CPU seconds the rest of the machine
used meanwhile (``cpu_other_s``: busy time spent by neither the command, PostgreSQL, the S3
server nor the benchmark).

Results go to ``<results-dir>/encryption.json`` under the runner's key (a run replaces that
runner's results for the scales and settings it measured and keeps the rest; raw data,
not committed, like ``run.py``'s), and to ``<results-dir>/encryption.md`` (committed) and
stdout: the medians, the ratio encrypted / plain and the peak-RSS difference judged
against issue 30's targets, then every measurement.

    .tools/venv/bin/python bench/encryption.py --scales 100MB --repetitions 3
    .tools/venv/bin/python bench/encryption.py --scales 1GB --repetitions 2
    .tools/venv/bin/python bench/encryption.py --runner host --settings gzip:1,none

The cluster and generated databases are shared with ``bench/run.py`` (``--work-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for path in (REPO_ROOT, REPO_ROOT / "scripts", BENCH_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import datagen  # noqa: E402
import measure  # noqa: E402
import run as bench_run  # noqa: E402
import stores  # noqa: E402
from runners import REGION, SETTINGS, HostRunner, ImageRunner, Runner  # noqa: E402

from devstack import tools  # noqa: E402
from devstack.jobimage import JobImageError, build_job_image, given_job_image  # noqa: E402
from devstack.s3server import AWS_VARIABLES_TO_CLEAR, dummy_aws_env  # noqa: E402

MODES = ("plain", "age")
RUNNERS = ("image", "host")
RESULTS_FORMAT = 2
#: issue 30's targets: encrypted backup and restore within 10 % of the plain time, peak RSS within 10 MiB
TIME_RATIO_LIMIT = 1.10
RSS_DIFFERENCE_LIMIT_MIB = 10.0


def _keygen(directory: Path) -> tuple[Path, str]:
    identity = directory / "bench-identity.txt"
    identity.unlink(missing_ok=True)
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True, timeout=30)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    return identity, recipient


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    """What one measurement keeps: wall seconds, peak RSS, the command's CPU seconds (and
    the CLI's own share, where encryption runs), the rest of the machine's CPU seconds
    meanwhile, the object's bytes and the phases from the CLI's log."""
    cpu = record.get("cpu", {})
    return {"seconds": round(record["seconds"], 2), "peak_rss_tree_mib": round(record["peak_rss_tree_mib"], 1),
            "peak_rss_main_mib": round(record["peak_rss_main_mib"], 1),
            "cpu_command_s": cpu.get("command_s"), "cpu_cli_s": cpu.get("tree:agent-bom-backup_s"),
            "bytes": record.get("bytes"), "cpu_other_s": cpu.get("other_s"), "cpu_servers_s": cpu.get("servers_s"),
            "cpu_busy_s": cpu.get("busy_s"), "phases": record.get("phases"),
            "cpu_by_process_s": {k.removeprefix("tree:").removesuffix("_s"): v for k, v in cpu.items()
                                 if k.startswith("tree:")},
            **{key: record[key] for key in ("encrypted_to", "plaintext_bytes", "decrypted") if key in record}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/encryption.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runner", default="image", choices=RUNNERS,
                        help="the job image as the chart runs it (default; built with scripts/build-image.sh "
                             "unless --image), or the host CLI")
    parser.add_argument("--image", default=None, metavar="TAG", help="a job image built already")
    parser.add_argument("--scales", default="100MB", help="comma-separated database sizes (default 100MB)")
    parser.add_argument("--settings", default=None,
                        help="comma-separated compression settings (default: the runner's auto: zstd:1 in the "
                             "image, gzip:1 with the host's pg_dump 15)")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--s3", default="moto", choices=tuple(stores.STORES))
    parser.add_argument("--pg-major", type=int, default=15, choices=(15, 18))
    parser.add_argument("--quiet-wait", type=float, default=4.0, metavar="SECONDS",
                        help="before each command wait up to SECONDS for other load to drop below "
                             f"{measure.QUIET_BUSY_FRACTION * 100:.0f}%% of the CPUs (default 4; 0: never)")
    parser.add_argument("--work-dir", type=Path, default=bench_run.DEFAULT_WORK_DIR)
    parser.add_argument("--results-dir", type=Path, default=bench_run.DEFAULT_RESULTS_DIR)
    parser.add_argument("--patched-src", type=Path, default=None, metavar="DIR",
                        help="run the CLI from a patched copy of the package (as bench/run.py: PYTHONPATH on the "
                             "host, mounted into the image's containers), e.g. to measure a change to agecrypt")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite encryption.md and the summaries from encryption.json")
    args = parser.parse_args(argv)
    args.scale_list = [s for s in args.scales.split(",") if s]
    for scale in args.scale_list:
        try:
            datagen.parse_scale(scale)
        except ValueError as exc:
            parser.error(f"--scales {scale}: {exc}")
    args.setting_list = [s for s in (args.settings or "").split(",") if s]
    for name in args.setting_list:
        if name not in SETTINGS:
            parser.error(f"--settings {name}: choose from {', '.join(SETTINGS)}")
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    if args.image and args.runner != "image":
        parser.error("--image needs --runner image")
    if args.patched_src and not args.patched_src.is_dir():
        parser.error(f"--patched-src {args.patched_src} is not a directory")
    args.cli_env = []  # what bench.Bench reads from run.py's arguments
    return args


def mode_order(repetition: int) -> tuple[str, ...]:
    """Plain first in even repetitions, encrypted first in odd ones."""
    return MODES if repetition % 2 == 0 else tuple(reversed(MODES))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        write(args.results_dir, load(args.results_dir / "encryption.json"))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for name in AWS_VARIABLES_TO_CLEAR:
        os.environ.pop(name, None)
    os.environ.update(dummy_aws_env(REGION))  # the rendered pod's S3 Secret is filled from these
    measure.QUIET_WAIT_S = args.quiet_wait
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.work_dir.chmod(0o755)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    job_image = None
    if args.runner == "image":
        bench_run.log("job image: " + (f"using {args.image}" if args.image else "building (cached while image/** is unchanged)"))
        try:
            job_image = given_job_image(args.image) if args.image else build_job_image()
        except JobImageError as exc:
            raise SystemExit(f"bench: {exc} (or run with --runner host)") from None

    started = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    cluster, state = bench_run.open_cluster(args.pg_major, args.work_dir)
    store = stores.open_store(args.s3, args.work_dir)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-age-", dir=args.work_dir) as scratch_dir:
        scratch = Path(scratch_dir)
        identity, recipient = _keygen(scratch)
        bench = bench_run.Bench(args, cluster, scratch)
        try:
            bench.store = store.start()
            postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
            measure.SERVER_PIDS.clear()
            measure.SERVER_PIDS.update({"postgres": postmaster} | store.pids)
            runner: Runner
            if job_image is not None:
                runner = ImageRunner(bench, job_image, bench_run.rendered_pod(store.endpoint_url, job_image.tag),
                                     cluster.major)
            else:
                runner = HostRunner(bench, tools.pg_bin_dir(args.pg_major), cluster.major)
            encrypt = {"AGENT_BOM_BACKUP_ENCRYPT_TO": recipient}
            decrypt = {"AGENT_BOM_RESTORE_IDENTITY_FILE": str(identity)}
            for label in args.scale_list:
                data = bench_run.ensure_database(cluster, state, args.work_dir, label, datagen.parse_scale(label),
                                                 regenerate=False)
                for name in args.setting_list or [runner.auto]:
                    setting = SETTINGS[name]
                    if not runner.supports(setting):
                        bench_run.log(f"skipping {name}: {runner.label} lacks it")
                        continue
                    with store.fresh_bucket() as bucket:  # page cache, byte-code, image layers; not recorded
                        bench_run.log(f"{label} {name}: warming up")
                        bench.cli_env = {}
                        runner.ours(setting, data["database"], bucket, "warmup")
                    for repetition in range(args.repetitions):
                        for mode in mode_order(repetition):
                            results.append(measure_pair(bench, runner, cluster, data, label, setting, mode,
                                                        repetition, encrypt if mode == "age" else {},
                                                        decrypt if mode == "age" else {}))
        finally:
            store.stop()
            cluster.stop()
    document = {
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_start": load_at_start, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "store": store.version,
        "runner": runner.label,
        **({"image": {"tag": job_image.tag, "id": job_image.image_id[:12]}} if job_image else {}),
        "quiet_wait_s": args.quiet_wait,
        **({"patched_src": str(args.patched_src)} if args.patched_src else {}),
        "results": results,
    }
    write(args.results_dir, merge(load(args.results_dir / "encryption.json"), runner.name, document))
    return 0


def write(results_dir: Path, document: dict[str, Any]) -> None:
    """encryption.json with each runner's summary, and encryption.md (also on stdout)."""
    for run in document["runners"].values():
        run["summary"] = summarize(run["results"])
    out = results_dir / "encryption.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    text = markdown(document)
    (results_dir / "encryption.md").write_text(text + "\n")
    print(text)
    bench_run.log(f"wrote {out} and encryption.md")


def measure_pair(bench: bench_run.Bench, runner: Runner, cluster: bench_run.BenchCluster, data: dict[str, Any],
                 label: str, setting: Any, mode: str, repetition: int, backup_env: dict[str, str],
                 restore_env: dict[str, str]) -> dict[str, Any]:
    """One backup in ``mode`` and the restore of it into a fresh database."""
    assert bench.store is not None
    with bench.store.fresh_bucket() as bucket:
        load_before = round(os.getloadavg()[0], 2)
        bench_run.log(f"{label} {setting.name} {mode} rep {repetition}: backup (load {load_before})")
        bench.cli_env = backup_env
        backup, uri = runner.ours(setting, data["database"], bucket, "bench")
        restore_db = f"bench_age_restore_{uuid.uuid4().hex[:8]}"
        bench_run.fresh_database(cluster, restore_db)
        try:
            bench_run.log(f"{label} {setting.name} {mode} rep {repetition}: restore")
            bench.cli_env = restore_env
            restore = runner.restore_ours(uri, restore_db)
        finally:
            bench.cli_env = {}
            bench_run.drop_database(cluster, restore_db)
    # the measurement is only worth its label when the CLI says it encrypted / decrypted
    if (bool(backup.get("encrypted_to")), bool(restore.get("decrypted"))) != (mode == "age", mode == "age"):
        raise RuntimeError(f"{mode} run: the backup logged encrypted_to={backup.get('encrypted_to')}, the restore "
                           f"decrypted={restore.get('decrypted')}: AGENT_BOM_BACKUP_ENCRYPT_TO did not reach the job")
    return {"scale": label, "database_bytes": data["database_bytes"], "setting": setting.name, "mode": mode,
            "repetition": repetition, "loadavg_1m_before": load_before,
            "backup": _summary(backup), "restore": _summary(restore)}


# ----------------------------------------------------------------------------- results file
def load(path: Path) -> dict[str, Any]:
    """The results file, in this format: format 1 (one run of the host CLI at the top
    level) becomes the ``host`` runner's entry."""
    if not path.exists():
        return {"kind": "encryption", "format": RESULTS_FORMAT, "runners": {}}
    document = json.loads(path.read_text())
    if "runners" in document:
        return document
    old = {k: v for k, v in document.items() if k != "kind"}
    old["measured"] = sorted({(r["scale"], r["setting"]) for r in old.get("results", [])})
    return {"kind": "encryption", "format": RESULTS_FORMAT, "runners": {"host": old}}


def merge(document: dict[str, Any], runner: str, run: dict[str, Any]) -> dict[str, Any]:
    """``run`` replaces ``runner``'s results for the (scale, setting) pairs it measured;
    the others stay, with the runs that measured them listed under ``runs``."""
    measured = {(r["scale"], r["setting"]) for r in run["results"]}
    previous = document["runners"].get(runner)
    kept = [r for r in (previous or {}).get("results", []) if (r["scale"], r["setting"]) not in measured]
    runs = [] if previous is None else previous.get("runs", [{k: v for k, v in previous.items() if k != "results"}])
    # a run stays listed while some of its results do
    runs = [r for r in runs if not (r.get("measured") and measured.issuperset(map(tuple, r["measured"])))]
    meta = {k: v for k, v in run.items() if k != "results"} | {"measured": sorted(measured)}
    document["runners"][runner] = meta | {"runs": [*runs, meta], "results": kept + run["results"]}
    return document


# ----------------------------------------------------------------------------- summary
def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (scale, setting): the medians of each mode, the ratio encrypted / plain of the
    medians of wall time and of the command's CPU seconds, the difference of the peak
    RSS medians, and the verdict on issue 30's targets (wall time within 10 %, peak RSS
    within 10 MiB; ``None`` when a mode is missing)."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for result in results:
        groups.setdefault((result["scale"], result["setting"]), {}).setdefault(result["mode"], []).append(result)
    rows = []
    for (scale, setting), by_mode in groups.items():
        row: dict[str, Any] = {"scale": scale, "setting": setting,
                               "n": {mode: len(by_mode.get(mode, [])) for mode in MODES}}
        for phase in ("backup", "restore"):
            medians = {mode: {key: _median([r[phase].get(key) for r in by_mode.get(mode, [])])
                              for key in ("seconds", "cpu_command_s", "cpu_cli_s", "peak_rss_tree_mib", "cpu_other_s")}
                       for mode in MODES}
            plain, age = medians["plain"], medians["age"]

            def ratio(key: str, plain: dict[str, Any] = plain, age: dict[str, Any] = age) -> float | None:
                return age[key] / plain[key] if age[key] is not None and plain[key] else None

            rss_difference = (age["peak_rss_tree_mib"] - plain["peak_rss_tree_mib"]
                              if age["peak_rss_tree_mib"] is not None and plain["peak_rss_tree_mib"] is not None
                              else None)
            time_ratio = ratio("seconds")
            # each repetition's encrypted run against its own plain run, which ran next to it
            plain_by_rep = {r["repetition"]: r[phase]["seconds"] for r in by_mode.get("plain", [])}
            paired = [r[phase]["seconds"] / plain_by_rep[r["repetition"]] for r in by_mode.get("age", [])
                      if plain_by_rep.get(r["repetition"])]
            row[phase] = {
                "median": medians,
                "time_ratio": time_ratio,
                "time_ratio_paired": _median(paired),
                "cpu_ratio": ratio("cpu_command_s"),
                "rss_difference_mib": rss_difference,
                "time_met": None if time_ratio is None else time_ratio <= TIME_RATIO_LIMIT,
                "rss_met": None if rss_difference is None else rss_difference <= RSS_DIFFERENCE_LIMIT_MIB,
            }
        rows.append(row)
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _verdict(met: bool | None) -> str:
    return "–" if met is None else ("met" if met else "**MISSED**")


def markdown(document: dict[str, Any]) -> str:
    """For each runner: medians per mode, the ratio encrypted / plain and the verdicts."""
    lines = ["# Client-side encryption's cost (bench/encryption.py)", ""]
    for name, run in document["runners"].items():
        lines += [f"## {run.get('runner', name)}", ""]
        for meta in run.get("runs") or [run]:
            machine = meta.get("machine", {})
            lines.append(f"- run {meta.get('date')}: {meta.get('store')}, {machine.get('cpus')} CPUs, load average "
                         f"{machine.get('loadavg_at_start', '?')} at start, {machine.get('loadavg_at_end', '?')} at "
                         "the end")
        lines += ["", "Medians over the repetitions (n = plain / encrypted). Wall seconds; age / plain = ratio of "
                  "the medians; paired = median of each repetition's encrypted / plain (they ran next to each "
                  "other); CPU = the command's CPU "
                  "seconds (process tree; in the image the container's processes plus podman); RSS = peak RSS of "
                  "that tree; other = CPU seconds the rest of the machine used meanwhile.", "",
                  "| scale | compression | n | phase | plain s | age s | age / plain | paired | plain CPU s | age CPU s | "
                  "CPU age / plain | plain RSS | age RSS | RSS difference | other CPU s (plain / age) | "
                  "time ≤ 1.10 x | RSS ≤ +10 MiB |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for row in summarize(run["results"]):
            for phase in ("backup", "restore"):
                p = row[phase]
                plain, age = p["median"]["plain"], p["median"]["age"]
                lines.append(
                    f"| {row['scale']} | {row['setting']} | {row['n']['plain']} / {row['n']['age']} | {phase} | "
                    f"{_fmt(plain['seconds'], '.2f')} | {_fmt(age['seconds'], '.2f')} | "
                    f"{_fmt(p['time_ratio'], '.3f')} | {_fmt(p['time_ratio_paired'], '.3f')} | "
                    f"{_fmt(plain['cpu_command_s'], '.2f')} | "
                    f"{_fmt(age['cpu_command_s'], '.2f')} | {_fmt(p['cpu_ratio'], '.3f')} | "
                    f"{_fmt(plain['peak_rss_tree_mib'], '.0f')} MiB | {_fmt(age['peak_rss_tree_mib'], '.0f')} MiB | "
                    f"{_fmt(p['rss_difference_mib'], '+.1f')} MiB | {_fmt(plain['cpu_other_s'], '.0f')} / "
                    f"{_fmt(age['cpu_other_s'], '.0f')} | {_verdict(p['time_met'])} | {_verdict(p['rss_met'])} |")
        lines += ["", "Every measurement, in the order run (load = 1-minute load average before the backup; "
                  "wall s / CPU-s / peak RSS MiB / other CPU-s):", "",
                  "| scale | compression | rep | mode | load | backup | restore |", "|---|---|---:|---|---:|---|---|"]
        for r in run["results"]:
            cells = [f"{r[p]['seconds']:.2f} / {_fmt(r[p].get('cpu_command_s'), '.2f')} / "
                     f"{r[p]['peak_rss_tree_mib']:.0f} / {_fmt(r[p].get('cpu_other_s'), '.0f')}" for p in ("backup", "restore")]
            lines.append(f"| {r['scale']} | {r['setting']} | {r['repetition']} | {r['mode']} | "
                         f"{_fmt(r.get('loadavg_1m_before'), '.1f')} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    sys.exit(main())

"""Source tree against source tree, interleaved: a change measured on a noisy machine.

``bench/run.py`` measures the production path against its floors; a change to the CLI
(imports, the order of the preflight, buffers, downloads) is tens of milliseconds or a few
per cent of CPU, which needs interleaved repetitions of the same command from each tree.
This script starts PostgreSQL 15 (the benchmark's cached cluster, bench/.work) and an S3
server (moto, or Ceph RGW), and runs ``agent-bom-backup backup`` — and with ``--restore``
the runbook's restore script — from each ``--src`` tree in turn (``PYTHONPATH``, like
``run.py --patched-src``), round after round, and prints per tree the median (min) of:

* the backup's spans from process start to its log events: ``first statement``
  (interpreter and imports), ``pg_dump started``, ``pg_dump first byte`` (the start-up cost
  issue 18 judges), ``upload started`` (the first part's upload may begin: newer trees);
* wall time, the CLI's CPU seconds and its peak RSS (psutil, as run.py measures them);
* with ``--restore``: the restore's wall time, its download phase, whether the download
  switched to parallel ranges (1) and its peak RSS.

    git archive 1998421 image/src | tar -x -C /tmp/before
    bench/compare.py --src before=/tmp/before/image/src --src after=image/src --reps 15
    bench/compare.py --src ... --scale 1GB --compression none --reps 5 --restore --s3 rgw

``--scale small`` (default) is the tests' seed (a ~100 kB dump: start-up only);
``--scale 1GB`` generates (once, cached) run.py's database of that size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
for path in (REPO_ROOT, REPO_ROOT / "scripts", BENCH_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import datagen  # noqa: E402
import measure  # noqa: E402
import psycopg  # noqa: E402
import stores  # noqa: E402
from runners import RESTORE_SCRIPT, log_events  # noqa: E402

from devstack import tools  # noqa: E402
from devstack.s3server import DEFAULT_REGION, dummy_aws_env  # noqa: E402
from devstack.seed import SeedSpec, seed  # noqa: E402

#: span name -> the log event that ends it
SPANS = (
    ("first statement", "backup starting"),
    ("pg_dump started", "starting pg_dump"),
    ("pg_dump first byte", "pg_dump output started"),
    ("upload started", "upload started"),
)
MiB = 1024 * 1024


def backup_once(src: Path, env: dict[str, str]) -> tuple[dict[str, float], str]:
    argv = [str(tools.venv_bin_dir() / "agent-bom-backup"), "backup"]
    m = measure.run(argv, env | {"PYTHONPATH": str(src)}, timeout=3600).check(f"backup from {src}")
    events = log_events(m.stderr)
    figures = {name: events[message]["_t"] - m.started_at for name, message in SPANS if message in events}
    figures["backup wall"] = m.seconds
    figures["backup CPU"] = m.cpu.get("tree:agent-bom-backup_s", 0.0)
    figures["backup peak RSS MiB"] = m.peak_rss_main / MiB
    return figures, m.stdout.strip().splitlines()[-1]


def restore_once(src: Path, env: dict[str, str], uri: str, target_url: str, cwd: Path) -> dict[str, float]:
    script_env = env | {"PYTHONPATH": str(src), "AGENT_BOM_BACKUP_CLI": str(tools.venv_bin_dir() / "agent-bom-backup"),
                        "AGENT_BOM_RESTORE_OPERATOR": "compare", "AGENT_BOM_RESTORE_JOBS": "2"}
    m = measure.run([str(RESTORE_SCRIPT), uri, target_url, DEFAULT_REGION], script_env, cwd=cwd, timeout=3600)
    m.check(f"restore from {src}")
    events = log_events(m.stderr)
    download = events.get("dump downloaded and verified", {})
    return {"restore wall": m.seconds, "restore download": float(download.get("seconds", 0.0)),
            "restore in ranges": float("downloading in parallel ranges" in events),
            "restore peak RSS MiB": m.peak_rss_main / MiB}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", action="append", required=True, metavar="NAME=DIR",
                        help="a source tree holding agent_bom_backup/ (repeatable)")
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--s3", choices=("moto", "rgw"), default="moto")
    parser.add_argument("--scale", default="small", help="small (the tests' seed) or a size such as 1GB")
    parser.add_argument("--compression", default=None, help="--compression for the backups (default: auto)")
    parser.add_argument("--restore", action="store_true", help="also restore each backup with the runbook's script")
    parser.add_argument("--cli-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    sources = [(name, Path(path).resolve()) for name, _, path in (s.partition("=") for s in args.src)]
    extra = dict(item.split("=", 1) for item in args.cli_env)
    if args.compression:
        extra["AGENT_BOM_BACKUP_COMPRESSION"] = args.compression

    import run as bench_run  # the benchmark's cached cluster and generated databases

    work_dir = BENCH_DIR / ".work"
    work_dir.mkdir(exist_ok=True)
    cluster, state = bench_run.open_cluster(15, work_dir)
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sources}
    try:
        database = _database(bench_run, cluster, state, work_dir, args.scale)
        store = stores.open_store(args.s3, Path(tempfile.mkdtemp(prefix="compare-s3-", dir="/tmp"))).start()
        try:
            env = {
                "PATH": f"{tools.venv_bin_dir()}:/usr/local/bin:/usr/bin:/bin",
                "HOME": os.environ.get("HOME", "/root"),
                "LANG": "C.UTF-8",
                **dummy_aws_env(),
                "PGPASSWORD": cluster.superuser_password,
                "AGENT_BOM_POSTGRES_URL": cluster.superuser_url(database),
                "AGENT_BOM_BACKUP_REGION": DEFAULT_REGION,
                "AGENT_BOM_BACKUP_ENDPOINT_URL": store.endpoint_url,
                "AGENT_BOM_BACKUP_PATH_STYLE": "true",
                "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
                "AGENT_BOM_BACKUP_PG_BIN_DIRS": str(cluster.bin_dir),
                **extra,
            }
            for rep in range(args.reps + 1):  # the first round warms up (byte-code, page cache)
                order = sources if rep % 2 == 0 else list(reversed(sources))
                for name, src in order:
                    with store.fresh_bucket() as bucket:
                        figures, uri = backup_once(src, env | {"AGENT_BOM_BACKUP_BUCKET": bucket})
                        if args.restore:
                            target = f"compare_{uuid.uuid4().hex[:8]}"
                            bench_run.fresh_database(cluster, target)
                            with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
                                figures |= restore_once(src, env | {"AGENT_BOM_BACKUP_SCRATCH_DIR": scratch},
                                                        uri, cluster.superuser_url(target), Path(scratch))
                            bench_run.drop_database(cluster, target)
                    if rep:
                        results[name].append(figures)
                    time.sleep(1.1)  # a new backup id (one per second)
        finally:
            store.stop()
    finally:
        cluster.stop()
    _print(args, results)
    return 0


def _database(bench_run: Any, cluster: Any, state: dict[str, Any], work_dir: Path, scale: str) -> str:
    """run.py's generated database of ``scale`` (cached), or the tests' small seed."""
    if scale != "small":
        bench_run.ensure_database(cluster, state, work_dir, scale, datagen.parse_scale(scale), False)
        return f"bench_{scale.lower()}"
    name = "compare_small"
    if not cluster.run_sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(name,)):
        cluster.create_database(name)
        with psycopg.connect(cluster.admin_conninfo.replace("dbname=postgres", f"dbname={name}"),
                             autocommit=True) as conn:
            seed(conn, SeedSpec(audit_rows_per_tenant=200, payload_bytes=128))
    return name


def _print(args: argparse.Namespace, results: dict[str, list[dict[str, float]]]) -> None:
    columns = [c for c in [*(name for name, _ in SPANS), "backup wall", "backup CPU", "backup peak RSS MiB",
                           "restore wall", "restore download", "restore in ranges", "restore peak RSS MiB"]
               if any(c in r for runs in results.values() for r in runs)]
    print(f"{args.reps} interleaved repetitions, scale {args.scale}, {args.s3}, compression "
          f"{args.compression or 'auto'}; median (min); spans in seconds from process start:")
    print("| tree | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for name, runs in results.items():
        cells = []
        for column in columns:
            values = [r[column] for r in runs if column in r]
            digits = 0 if "MiB" in column else (2 if "CPU" in column or "wall" in column else 3)
            cells.append(f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f})" if values else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")


if __name__ == "__main__":
    sys.exit(main())

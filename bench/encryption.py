"""The cost of client-side age encryption (issue 30): backup and restore with and without it.

For each scale (a generated database of ~N bytes, ``datagen``) and compression setting, the
host CLI backs up to the S3 server with and without ``AGENT_BOM_BACKUP_ENCRYPT_TO`` and the
runbook's restore script restores each backup into a fresh database (with
``AGENT_BOM_RESTORE_IDENTITY_FILE`` for the encrypted one), alternating plain and encrypted
within each repetition so that a change in the machine's load hits both. Wall time, peak RSS
of the whole process tree and the command's CPU time are measured as ``bench/run.py`` does
(``measure.run``). Results: ``<results-dir>/encryption.json`` and a markdown table on stdout.

    .tools/venv/bin/python bench/encryption.py --scales 100MB,1GB --settings gzip:1,none

The cluster and generated databases are shared with ``bench/run.py`` (``--work-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
import run as bench_run  # noqa: E402
import stores  # noqa: E402
from runners import SETTINGS, HostRunner  # noqa: E402

from devstack import tools  # noqa: E402

MODES = ("plain", "age")


def _keygen(directory: Path) -> tuple[Path, str]:
    identity = directory / "bench-identity.txt"
    identity.unlink(missing_ok=True)
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True, timeout=30)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    return identity, recipient


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": round(record["seconds"], 2), "peak_rss_tree_mib": round(record["peak_rss_tree_mib"], 1),
            "peak_rss_main_mib": round(record["peak_rss_main_mib"], 1),
            "cpu_command_s": record.get("cpu", {}).get("command_s"), "bytes": record.get("bytes"),
            "cpu_other_s": record.get("cpu", {}).get("other_s")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="100MB", help="comma-separated database sizes (default 100MB)")
    parser.add_argument("--settings", default="gzip:1", help="comma-separated compression settings (default gzip:1)")
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--s3", default="moto", choices=("moto", "rgw"))
    parser.add_argument("--pg-major", type=int, default=15)
    parser.add_argument("--work-dir", type=Path, default=bench_run.DEFAULT_WORK_DIR)
    parser.add_argument("--results-dir", type=Path, default=bench_run.DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    args.patched_src = None
    args.cli_env = []
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)

    cluster, state = bench_run.open_cluster(args.pg_major, args.work_dir)
    store = stores.open_store(args.s3, args.work_dir)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-age-", dir=args.work_dir) as scratch_dir:
        scratch = Path(scratch_dir)
        identity, recipient = _keygen(scratch)
        bench = bench_run.Bench(args, cluster, scratch)
        try:
            bench.store = store.start()
            runner = HostRunner(bench, tools.pg_bin_dir(args.pg_major), cluster.major)
            for label in args.scales.split(","):
                target = datagen.parse_scale(label)
                data = bench_run.ensure_database(cluster, state, args.work_dir, label, target, regenerate=False)
                for name in args.settings.split(","):
                    setting = SETTINGS[name]
                    if not runner.supports(setting):
                        bench_run.log(f"skipping {name}: {runner.label} lacks it")
                        continue
                    for repetition in range(args.repetitions):
                        for mode in (MODES if repetition % 2 == 0 else tuple(reversed(MODES))):
                            bench.cli_env = ({"AGENT_BOM_BACKUP_ENCRYPT_TO": recipient,
                                              "AGENT_BOM_RESTORE_IDENTITY_FILE": str(identity)}
                                             if mode == "age" else {})
                            with store.fresh_bucket() as bucket:
                                bench_run.log(f"{label} {name} {mode}: backup")
                                backup, uri = runner.ours(setting, data["database"], bucket, "bench")
                                restore_db = f"bench_age_restore_{uuid.uuid4().hex[:8]}"
                                bench_run.fresh_database(cluster, restore_db)
                                try:
                                    bench_run.log(f"{label} {name} {mode}: restore")
                                    restore = runner.restore_ours(uri, restore_db)
                                finally:
                                    bench_run.drop_database(cluster, restore_db)
                            results.append({"scale": label, "database_bytes": data["database_bytes"],
                                            "setting": name, "mode": mode, "repetition": repetition,
                                            "backup": _summary(backup), "restore": _summary(restore)})
        finally:
            store.stop()
            cluster.stop()
    document = {
        "kind": "encryption",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "store": store.version,
        "runner": runner.label,
        "results": results,
    }
    out = args.results_dir / "encryption.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(table(document))
    bench_run.log(f"wrote {out}")
    return 0


def table(document: dict[str, Any]) -> str:
    """One row per scale, setting and mode: the mean over repetitions of wall seconds, peak RSS
    of the process tree and the command's CPU seconds, for backup and restore."""
    rows = ["| scale | compression | mode | backup s | backup peak RSS | backup CPU s | restore s | restore peak RSS "
            "| restore CPU s |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for result in document["results"]:
        groups.setdefault((result["scale"], result["setting"], result["mode"]), []).append(result)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    for (scale, setting, mode), items in groups.items():
        def pick(phase: str, key: str) -> float:
            return mean([float(i[phase][key] or 0) for i in items])
        rows.append(f"| {scale} | {setting} | {mode} | {pick('backup', 'seconds'):.1f} | "
                    f"{pick('backup', 'peak_rss_tree_mib'):.0f} MiB | {pick('backup', 'cpu_command_s'):.2f} | "
                    f"{pick('restore', 'seconds'):.1f} | {pick('restore', 'peak_rss_tree_mib'):.0f} MiB | "
                    f"{pick('restore', 'cpu_command_s'):.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())

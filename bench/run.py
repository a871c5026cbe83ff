"""Benchmark agent-bom-backup against its limits and against the two-step approach.

For each scale (a generated database of ~N bytes) and each compression setting, on the
same PostgreSQL server and the same local S3 server (moto), every repetition measures:

* limit A   ``pg_dump --format=custom`` to /dev/null (the dump alone);
* peer      ``pg_dump --format=custom --file=F`` then ``aws s3 cp F s3://...`` (two steps);
* limit B   boto3 ``upload_file(F)`` of the peer's file (the upload alone);
* ours      ``agent-bom-backup backup`` (the real CLI, configured by environment);
* restore   ``agent-bom-backup restore`` into a fresh empty database, and the baseline
            boto3 ``download_file`` + ``pg_restore -j 2`` into another fresh one;

with wall time and peak RSS (the process and its whole tree). Results go to
``<results-dir>/<date>.json`` plus a markdown summary and PNG plots (``report.py``).
Run it through ``bench/run.sh`` (installs the tools first); ``--help`` lists options.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
for path in (REPO_ROOT / "scripts", BENCH_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import datagen
import measure
import psycopg
import report
from psycopg import sql

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.s3server import AWS_VARIABLES_TO_CLEAR, MotoServer, dummy_aws_env

RESULTS_FORMAT = 1
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_WORK_DIR = BENCH_DIR / ".work"
DEFAULT_SCALES = ("100MB", "1GB")
QUICK_SCALE = "20MB"
BUCKET = "agent-bom-bench"
REGION = "us-east-1"
RESTORE_JOBS = 2
MiB = 1024 * 1024

#: command-line compressors timed over the uncompressed dump (an estimate for settings
#: this pg_dump lacks); pg_dump's gzip uses the same deflate algorithm as gzip(1)
COMPRESSORS = (("gzip", 1), ("gzip", 6), ("zstd", 1), ("lz4", 1))
#: what each repetition measures, in the order the results list them
BACKUP_KINDS = ("limit_a", "limit_b", "peer", "ours")
RESTORE_KINDS = ("restore_ours", "restore_baseline")


@dataclass(frozen=True)
class Setting:
    """One compression setting: the peer's pg_dump flag and our CLI's value."""

    name: str
    pg_dump_args: tuple[str, ...]
    ours: str
    label: str


def candidate_settings(client_major: int) -> list[Setting]:
    settings = [
        Setting("gzip:6", (), "gzip:6", "gzip:6 (pg_dump's default: no --compress)"),
        Setting("gzip:1", ("--compress=1",), "gzip:1", "gzip:1"),
    ]
    if client_major >= 16:
        settings += [
            Setting("zstd:1", ("--compress=zstd:1",), "zstd:1", "zstd:1"),
            Setting("lz4", ("--compress=lz4",), "lz4", "lz4"),
        ]
    else:
        settings.append(Setting("zstd:1", ("--compress=zstd:1",), "zstd:1", "zstd:1"))
    settings.append(Setting("none", ("--compress=0",), "none", "none"))
    return settings


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- cluster
class BenchCluster(PgCluster):
    """The test harness's cluster with settings for bulk work (more shared_buffers and
    maintenance_work_mem, fewer checkpoints); reusable across runs from ``base_dir``."""

    def _harness_settings(self) -> dict[str, str]:
        return super()._harness_settings() | {
            "shared_buffers": "256MB",
            "maintenance_work_mem": "256MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "30min",
        }

    def start(self) -> PgCluster:
        if (self.data_dir / "PG_VERSION").exists():
            self._write_config()  # the port is chosen anew on each run
        return super().start()


def open_cluster(major: int, work_dir: Path) -> tuple[BenchCluster, dict[str, Any]]:
    """Start the cached cluster in ``work_dir`` (created on first use)."""
    base = work_dir / f"pg{major}"
    state_file = work_dir / f"pg{major}.json"
    state: dict[str, Any] = {}
    if state_file.exists() and (base / "data" / "PG_VERSION").exists():
        state = json.loads(state_file.read_text())
    else:
        shutil.rmtree(base, ignore_errors=True)
        state = {"superuser_password": uuid.uuid4().hex, "databases": {}}
    cluster = BenchCluster(major, base, superuser_password=state["superuser_password"])
    cluster.start()
    state_file.write_text(json.dumps(state, indent=2))
    return cluster, state


def ensure_database(cluster: BenchCluster, state: dict[str, Any], work_dir: Path, label: str,
                    target: int, regenerate: bool) -> dict[str, Any]:
    name = f"bench_{label.lower()}"
    cached = state["databases"].get(name)
    exists = bool(cluster.run_sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(name,)))
    if (not regenerate and exists and cached and cached.get("generator_version") == datagen.GENERATOR_VERSION
            and cached.get("target_bytes") == target):
        log(f"reusing generated database {name} ({cached['database_bytes'] / 1e6:.0f} MB)")
        return cached
    log(f"generating {name} (~{label})")
    data = datagen.generate(cluster.admin_conninfo, name, target, log=log).to_dict()
    state["databases"][name] = data
    (work_dir / f"pg{cluster.major}.json").write_text(json.dumps(state, indent=2))
    log(f"generated {name}: {data['database_bytes'] / 1e6:.0f} MB, {data['audit_rows']} audit rows in {data['seconds']} s")
    return data


def _server_pids(cluster: BenchCluster, moto: MotoServer) -> dict[str, int]:
    """The postmaster (with its backends) and moto, whose CPU time is accounted apart."""
    pids = {"postgres": int((cluster.data_dir / "postmaster.pid").read_text().split()[0])}
    process = getattr(moto, "_process", None)  # the harness keeps its Popen here
    if process is not None:
        pids["moto"] = process.pid
    return pids


def fresh_database(cluster: BenchCluster, name: str) -> None:
    with psycopg.connect(cluster.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(cluster: BenchCluster, name: str) -> None:
    with psycopg.connect(cluster.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ----------------------------------------------------------------------------- runner
class Bench:
    def __init__(self, args: argparse.Namespace, cluster: BenchCluster, moto: MotoServer, scratch: Path) -> None:
        self.args = args
        self.cluster = cluster
        self.moto = moto
        self.scratch = scratch
        self.pg_bin = tools.pg_bin_dir(args.pg_major)
        self.venv_bin = tools.venv_bin_dir()
        self.home = scratch / "home"
        self.home.mkdir(parents=True, exist_ok=True)

    # -- environment ------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {
            "PATH": f"{self.venv_bin}:{self.pg_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "TMPDIR": str(self.scratch),
        }
        env.update(dummy_aws_env(REGION))
        return env

    def pg_env(self) -> dict[str, str]:
        return self.base_env() | {"PGPASSWORD": self.cluster.superuser_password}

    def db_url(self, database: str) -> str:
        """Password-less URL over TCP (the password travels in PGPASSWORD or the CLI's env)."""
        return self.cluster.url(database)

    def ours_env(self, database: str, prefix: str, compression: str | None) -> dict[str, str]:
        env = self.base_env() | {
            "AGENT_BOM_POSTGRES_URL": self.cluster.superuser_url(database),
            "AGENT_BOM_BACKUP_BUCKET": BUCKET,
            "AGENT_BOM_BACKUP_PREFIX": prefix,
            "AGENT_BOM_BACKUP_REGION": REGION,
            "AGENT_BOM_BACKUP_ENDPOINT_URL": self.moto.endpoint_url,
            "AGENT_BOM_BACKUP_PATH_STYLE": "true",
            "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
            "AGENT_BOM_BACKUP_PG_BIN_DIRS": str(self.pg_bin),
            "AGENT_BOM_BACKUP_SCRATCH_DIR": str(self.scratch),
        }
        if compression is not None:
            env["AGENT_BOM_BACKUP_COMPRESSION"] = compression
        if self.args.patched_src:
            env["PYTHONPATH"] = str(self.args.patched_src)
        for item in self.args.cli_env:
            name, _, value = item.partition("=")
            env[name] = value
        return env

    def s3io_env(self) -> dict[str, str]:
        return self.base_env() | {"BENCH_S3_ENDPOINT": self.moto.endpoint_url, "BENCH_S3_BUCKET": BUCKET}

    def reset_s3(self) -> None:
        self.moto.reset()
        self.moto.create_bucket(BUCKET, REGION)

    # -- backups ----------------------------------------------------------------
    def pg_dump_argv(self, setting: Setting, database: str) -> list[str]:
        return [str(self.pg_bin / "pg_dump"), "--format=custom", *setting.pg_dump_args, "--no-password",
                f"--dbname={self.db_url(database)}"]

    def limit_a(self, setting: Setting, database: str) -> dict[str, Any]:
        m = measure.run(self.pg_dump_argv(setting, database), self.pg_env(), stdout_path=Path(os.devnull))
        m.check("pg_dump to /dev/null")
        return _record(m)

    def peer_and_limit_b(self, setting: Setting, database: str, key: str,
                         with_file=None) -> tuple[dict[str, Any], dict[str, Any], int]:  # type: ignore[no-untyped-def]
        """The two-step peer, then limit B on its file; ``with_file(path)`` runs before the file goes."""
        dump_file = self.scratch / "peer.dump"
        try:
            dump = measure.run(self.pg_dump_argv(setting, database) + [f"--file={dump_file}"], self.pg_env())
            dump.check("peer pg_dump")
            size = dump_file.stat().st_size
            upload = measure.run(
                [str(self.venv_bin / "aws"), "s3", "cp", str(dump_file), f"s3://{BUCKET}/peer/{key}",
                 "--endpoint-url", self.moto.endpoint_url, "--only-show-errors"],
                self.base_env(),
            )
            upload.check("aws s3 cp")
            limit = measure.run([str(self.venv_bin / "python"), str(BENCH_DIR / "s3io.py"), "upload",
                                 str(dump_file), f"limit-b/{key}"], self.s3io_env())
            limit.check("boto3 upload_file")
            if with_file is not None:
                with_file(dump_file)
        finally:
            dump_file.unlink(missing_ok=True)
        transfer = json.loads(limit.stdout.strip().splitlines()[-1])
        peer = {
            "seconds": dump.seconds + upload.seconds,
            "dump_seconds": dump.seconds,
            "upload_seconds": upload.seconds,
            "peak_rss_main_mib": max(dump.peak_rss_main, upload.peak_rss_main) / MiB,
            "peak_rss_tree_mib": max(dump.peak_rss_tree, upload.peak_rss_tree) / MiB,
            "cpu": _cpu_sum(dump, upload),
            "bytes": size,
        }
        limit_b = {
            "seconds": transfer["seconds"],
            "process_seconds": limit.seconds,
            "peak_rss_main_mib": limit.peak_rss_main / MiB,
            "peak_rss_tree_mib": limit.peak_rss_tree / MiB,
            # the transfer's own CPU time, not the interpreter's start-up (which limit B excludes)
            "cpu": limit.cpu | {"tree:python_s": round(transfer["cpu_s"], 3)},
            "bytes": transfer["bytes"],
        }
        return peer, limit_b, size

    def ours(self, setting: Setting, database: str, prefix: str, default: bool,
             keep_samples: bool = False) -> tuple[dict[str, Any], str]:
        env = self.ours_env(database, prefix, None if default else setting.ours)
        m = measure.run([str(self.venv_bin / "agent-bom-backup"), "backup"], env, keep_samples=keep_samples)
        m.check("agent-bom-backup backup")
        uri = m.stdout.strip().splitlines()[-1]
        events = _log_events(m.stderr)
        record = _record(m)
        record["phases"] = _phases(m, events, (
            ("startup_preflight", None, "starting pg_dump"),
            ("stream", "starting pg_dump", "object uploaded"),
            ("roles_manifest_exit", "object uploaded", None),
        ))
        uploaded = events.get("object uploaded", {})
        record["bytes"] = uploaded.get("bytes")
        record["parts"] = uploaded.get("parts")
        record["compression"] = events.get("preflight: database reachable", {}).get("compression")
        if keep_samples:
            record["samples"] = [[round(s.t, 3), round(s.rss_main / MiB, 2), round(s.rss_tree / MiB, 2)]
                                 for s in m.samples]
        return record, uri

    def compressor_costs(self, raw_dump: Path) -> list[dict[str, Any]]:
        """CPU cost and output size of compressors over an uncompressed custom-format dump:
        what zstd:1 or lz4 would cost inside a pg_dump that has them (pg_dump 15 here has not)."""
        out = self.scratch / "compressed.tmp"
        rows = []
        for tool, level in COMPRESSORS:
            path = shutil.which(tool)
            if path is None:
                continue
            try:
                m = measure.run([path, f"-{level}", "-c", str(raw_dump)], self.base_env(), stdout_path=out)
                m.check(f"{tool} -{level}")
                rows.append({"tool": f"{tool} -{level}", "seconds": m.seconds, "cpu_s": m.cpu.get("command_s"),
                             "input_bytes": raw_dump.stat().st_size, "output_bytes": out.stat().st_size})
            finally:
                out.unlink(missing_ok=True)
        return rows

    # -- restores ---------------------------------------------------------------
    def restore_ours(self, uri: str, target: str) -> dict[str, Any]:
        fresh_database(self.cluster, target)
        try:
            env = self.ours_env("postgres", "unused", None) | {
                "AGENT_BOM_RESTORE_POSTGRES_URL": self.cluster.superuser_url(target),
                "AGENT_BOM_RESTORE_JOBS": str(RESTORE_JOBS),
                "AGENT_BOM_RESTORE_OPERATOR": "bench",
            }
            env.pop("AGENT_BOM_POSTGRES_URL")
            m = measure.run([str(self.venv_bin / "agent-bom-backup"), "restore", uri], env)
            m.check("agent-bom-backup restore")
        finally:
            drop_database(self.cluster, target)
        events = _log_events(m.stderr)
        record = _record(m)
        record["phases"] = _restore_phases(m, events)
        return record

    def restore_baseline(self, key: str, target: str) -> dict[str, Any]:
        fresh_database(self.cluster, target)
        dump_file = self.scratch / "baseline.dump"
        try:
            download = measure.run([str(self.venv_bin / "python"), str(BENCH_DIR / "s3io.py"), "download",
                                    key, str(dump_file)], self.s3io_env())
            download.check("boto3 download_file")
            restore = measure.run([str(self.pg_bin / "pg_restore"), f"--jobs={RESTORE_JOBS}", "--no-password",
                                   f"--dbname={self.db_url(target)}", str(dump_file)], self.pg_env())
            restore.check("pg_restore")
        finally:
            dump_file.unlink(missing_ok=True)
            drop_database(self.cluster, target)
        return {
            "seconds": download.seconds + restore.seconds,
            "download_seconds": download.seconds,
            "pg_restore_seconds": restore.seconds,
            "peak_rss_main_mib": max(download.peak_rss_main, restore.peak_rss_main) / MiB,
            "peak_rss_tree_mib": max(download.peak_rss_tree, restore.peak_rss_tree) / MiB,
            "cpu": _cpu_sum(download, restore),
        }


def _restore_phases(m: measure.Measured, events: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Where the restore's time goes, from its log: start-up, checks, download+SHA-256,
    pg_restore + verification queries, exit."""
    download = events.get("dump downloaded and verified")
    marks: list[tuple[str, float | None]] = [("start", m.started_at),
                                             ("restoring backup", events.get("restoring backup", {}).get("_t"))]
    if download and "seconds" in download:
        marks.append(("download start", download["_t"] - float(download["seconds"])))
        marks.append(("download end", download["_t"]))
    marks.append(("running pg_restore", events.get("running pg_restore", {}).get("_t")))
    marks.append(("restore verified", events.get("restore verified", {}).get("_t")))
    marks.append(("end", m.started_at + m.seconds))
    names = {
        ("start", "restoring backup"): "startup",
        ("restoring backup", "download start"): "checks_before_download",
        ("download start", "download end"): "download_sha256",
        ("download end", "running pg_restore"): "between",
        ("running pg_restore", "restore verified"): "pg_restore_and_verify",
        ("restore verified", "end"): "report_exit",
    }
    known = [(name, t) for name, t in marks if t is not None]
    phases: dict[str, float] = {}
    for (a, ta), (b, tb) in itertools.pairwise(known):
        phases[names.get((a, b), f"{a}..{b}")] = round(max(0.0, tb - ta), 3)
    return phases


def _record(m: measure.Measured) -> dict[str, Any]:
    return {
        "seconds": m.seconds,
        "peak_rss_main_mib": m.peak_rss_main / MiB,
        "peak_rss_tree_mib": m.peak_rss_tree / MiB,
        "cpu": m.cpu,
    }


def _cpu_sum(*measured: measure.Measured) -> dict[str, float]:
    total: dict[str, float] = {}
    for m in measured:
        for key, value in m.cpu.items():
            total[key] = round(total.get(key, 0.0) + value, 3)
    return total


def _log_events(stderr: str) -> dict[str, dict[str, Any]]:
    """The CLI's JSON log lines by message (last wins), each with ``_t`` = epoch seconds."""
    events: dict[str, dict[str, Any]] = {}
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or "message" not in entry:
            continue
        try:
            entry["_t"] = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC).timestamp()
        except (KeyError, ValueError):
            continue
        events[entry["message"]] = entry
    return events


def _phases(m: measure.Measured, events: dict[str, dict[str, Any]],
            spans: tuple[tuple[str, str | None, str | None], ...]) -> dict[str, float]:
    """Durations between log events (None = process start / end)."""
    phases: dict[str, float] = {}
    for name, start, end in spans:
        t0 = m.started_at if start is None else events.get(start, {}).get("_t")
        t1 = m.started_at + m.seconds if end is None else events.get(end, {}).get("_t")
        if t0 is not None and t1 is not None:
            phases[name] = round(max(0.0, t1 - t0), 3)
    return phases


# ----------------------------------------------------------------------------- main
def host_info(bench: Bench, client_version: str) -> dict[str, Any]:
    def version(module: str) -> str:
        try:
            out = subprocess.run([str(bench.venv_bin / "python"), "-c",
                                  f"import {module}; print({module}.__version__)"],
                                 capture_output=True, text=True, timeout=60, check=False)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "image/src"],
                                capture_output=True, text=True, check=False).stdout.strip())
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "postgres_server": bench.cluster.run_sql("SHOW server_version")[0][0],
        "pg_dump": client_version,
        "moto": version("moto"),
        "boto3": version("boto3"),
        "awscli": version("awscli"),
        "agent_bom_backup": version("agent_bom_backup"),
        "git_commit": commit + ("+uncommitted image/src changes" if dirty else ""),
        "patched_src": str(bench.args.patched_src) if bench.args.patched_src else None,
        "cli_env": list(bench.args.cli_env),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Measure agent-bom-backup backup/restore against pg_dump, boto3 and the two-step approach.",
    )
    parser.add_argument("--scale", action="append", type=str, metavar="SIZE",
                        help=f"database size to generate, e.g. 100MB or 1GB (repeatable; default: "
                             f"{' and '.join(DEFAULT_SCALES)}; --quick: {QUICK_SCALE})")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help=f"smoke mode: {QUICK_SCALE}, 1 repetition, results named <date>-quick")
    parser.add_argument("--settings", default=None,
                        help="comma-separated compression settings to measure (default: every one pg_dump supports "
                             "of gzip:6,gzip:1,zstd:1,lz4,none)")
    parser.add_argument("--pg-major", type=int, default=15, choices=(15, 18),
                        help="PostgreSQL server and client major (15: Debian; 18: embedded wheel)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="cluster, generated databases and scratch files (cached between runs)")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the generated databases")
    parser.add_argument("--update-docs", action="store_true",
                        help="replace the generated block of docs/performance.md with this run's summary")
    parser.add_argument("--patched-src", type=Path, default=None,
                        help="PYTHONPATH for the CLI (a patched copy of the package, to measure a change)")
    parser.add_argument("--quiet-wait", type=float, default=None, metavar="SECONDS",
                        help="before each command wait up to SECONDS for other load on the machine to drop "
                             f"below {measure.QUIET_BUSY_FRACTION:.0%} of the CPUs (default 4; --quick: 0)")
    parser.add_argument("--cli-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for agent-bom-backup (repeatable), e.g. "
                             "AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY=2, to measure a setting")
    parser.add_argument("--name", default=None, help="results file stem (default: UTC date, +'-quick')")
    args = parser.parse_args(argv)
    args.scales = args.scale or ([QUICK_SCALE] if args.quick else list(DEFAULT_SCALES))
    for scale in args.scales:
        datagen.parse_scale(scale)
    args.reps = args.reps or (1 if args.quick else 3)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 4.0
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, so the servers are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for name in AWS_VARIABLES_TO_CLEAR:
        os.environ.pop(name, None)
    os.environ.update(dummy_aws_env(REGION))
    measure.QUIET_WAIT_S = args.quiet_wait
    started = time.monotonic()
    date = datetime.now(UTC)
    stem = args.name or (date.strftime("%Y-%m-%d") + ("-quick" if args.quick else ""))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.work_dir.chmod(0o755)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=args.work_dir))

    from agent_bom_backup.pgclients import choose_compression, discover

    cluster, state = open_cluster(args.pg_major, args.work_dir)
    moto = MotoServer(args.work_dir / "moto")
    try:
        moto.start()
        measure.SERVER_PIDS.update(_server_pids(cluster, moto))
        bench = Bench(args, cluster, moto, scratch)
        client = next(c for c in discover([str(bench.pg_bin)], only=True))
        auto, auto_note = choose_compression(client, "auto", None)
        wanted = args.settings.split(",") if args.settings else None
        settings, unavailable = [], []
        for setting in candidate_settings(client.major):
            if wanted is not None and setting.name not in wanted:
                continue
            algorithm = setting.ours.partition(":")[0]
            if client.supports_compression(algorithm):
                settings.append(setting)
            else:
                unavailable.append({"setting": setting.name,
                                    "reason": f"pg_dump {client.version} was built without {algorithm}"})
        if not settings:
            raise SystemExit("bench: no compression setting to measure")
        log(f"pg_dump {client.version}; our default (auto) resolves to {auto}; measuring "
            f"{', '.join(s.name for s in settings)}; unavailable: {', '.join(u['setting'] for u in unavailable) or 'none'}")
        results: dict[str, Any] = {
            "format": RESULTS_FORMAT,
            "name": stem,
            "date": date.isoformat(timespec="seconds"),
            "quick": args.quick,
            "reps": args.reps,
            "quiet_wait_s": args.quiet_wait,
            "restore_jobs": RESTORE_JOBS,
            "host": host_info(bench, client.version),
            "ours_default": {"setting": str(auto), "note": auto_note},
            "pg_dump_default": "gzip:6",
            "settings": [{"name": s.name, "label": s.label, "pg_dump_args": list(s.pg_dump_args)} for s in settings],
            "unavailable": unavailable,
            "scales": [],
        }
        for label in args.scales:
            target = datagen.parse_scale(label)
            data = ensure_database(cluster, state, args.work_dir, label, target, args.regenerate)
            results["scales"].append(run_scale(bench, label, data, settings, str(auto), args.reps))
        results["total_seconds"] = round(time.monotonic() - started, 1)
        results["host"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results["targets"] = report.evaluate_targets(results)
    finally:
        moto.stop()
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    json_path = args.results_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    summary_path = report.write_summary(results, args.results_dir, stem)
    log(f"results: {json_path}, {summary_path}")
    if args.update_docs:
        docs = report.update_docs(REPO_ROOT / "docs" / "performance.md", summary_path)
        log(f"updated {docs}")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


def run_scale(bench: Bench, label: str, data: dict[str, Any], settings: list[Setting], auto: str,
              reps: int) -> dict[str, Any]:
    database = data["database"]
    log(f"{label}: warming up (page cache, CLI byte-code)")
    warm = next((s for s in settings if s.name == auto), settings[0])
    bench.reset_s3()
    bench.limit_a(warm, database)
    bench.ours(warm, database, f"warmup/{label}", default=warm.name == auto)
    bench.reset_s3()
    per_setting: dict[str, dict[str, Any]] = {
        s.name: {"setting": s.name, "ours_is_default": s.name == auto, "runs": {k: [] for k in BACKUP_KINDS + RESTORE_KINDS}}
        for s in settings
    }
    largest_setting = auto if auto in per_setting else settings[0].name
    estimates: list[dict[str, Any]] = []
    for rep in range(reps):
        for setting in settings:
            entry = per_setting[setting.name]
            runs = entry["runs"]
            prefix = f"bench/{label}/{setting.name.replace(':', '-')}/r{rep}"
            steps = ["limit_a", "peer", "ours"]
            steps = steps[rep % 3:] + steps[:rep % 3]  # rotate so no step always runs first
            uri = ""
            for step in steps:
                if step == "limit_a":
                    runs["limit_a"].append(bench.limit_a(setting, database))
                elif step == "peer":
                    hook = ((lambda path: estimates.extend(bench.compressor_costs(path)))
                            if setting.name == "none" and rep == 0 else None)
                    peer, limit_b, size = bench.peer_and_limit_b(setting, database, prefix + ".dump", hook)
                    runs["peer"].append(peer)
                    runs["limit_b"].append(limit_b)
                    entry["dump_bytes"] = size
                else:
                    keep = setting.name == largest_setting and rep == reps - 1
                    record, uri = bench.ours(setting, database, prefix, default=setting.name == auto,
                                             keep_samples=keep)
                    runs["ours"].append(record)
            key = uri.removeprefix(f"s3://{BUCKET}/")
            kinds = ["restore_ours", "restore_baseline"]
            if rep % 2:
                kinds.reverse()  # alternate which restore runs first
            for kind in kinds:
                if kind == "restore_ours":
                    runs[kind].append(bench.restore_ours(uri, "bench_restore_ours"))
                else:
                    runs[kind].append(bench.restore_baseline(key, "bench_restore_baseline"))
            bench.reset_s3()
            last = {k: round(v[-1]["seconds"], 2) for k, v in runs.items() if v}
            log(f"{label} {setting.name} rep {rep + 1}/{reps}: {last}")
    for entry in per_setting.values():
        entry["stats"] = {kind: report.stats([r["seconds"] for r in runs]) for kind, runs in entry["runs"].items()}
    return {"label": label, "data": data, "settings": list(per_setting.values()), "compressor_estimates": estimates}


if __name__ == "__main__":
    sys.exit(main())

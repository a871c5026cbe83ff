"""Benchmark agent-bom-backup's production path against its floors and the two-step approach.

Per S3 server (moto, or Ceph RGW: ``--s3``), per scale (a generated database of ~N bytes),
per runner (the host CLI, and the job image the chart runs: the rendered CronJob pod in
podman) and per compression setting, every repetition measures, on the same PostgreSQL
server and the same S3 server:

* limit A   the runner's ``pg_dump --format=custom`` to /dev/null (the dump floor; in the
            image timed inside the container);
* ours      ``agent-bom-backup backup`` (``runners.py`` says how each runner runs it);
* peer      host only: ``pg_dump --format=custom --file=F`` with the host's pg_dump of the
            server's major (the runbook's rule), then ``aws s3 cp F s3://...``: the
            two-step approach;
* restore   the runbook's restore script into a fresh empty database (ours), and the
            baseline: boto3 download of the same object, then the runner's
            ``pg_restore -j 2`` into another fresh one;
* limit B   boto3 ``upload_file`` of the downloaded dump: the same bytes, with the CLI's
            part size, concurrency and checksum settings (the upload floor);

with wall time, peak RSS (the process and its whole tree; a container's own processes)
and CPU time per component. Results go to ``<results-dir>/<name>.json`` plus a markdown
summary and PNG plots (``report.py``). Run it through ``bench/run.sh`` (installs the tools
first, builds the image, starts the servers); ``--help`` lists options.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
for path in (REPO_ROOT, REPO_ROOT / "scripts", BENCH_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import datagen
import measure
import psycopg
import report
import stores
from psycopg import sql
from runners import (
    DATABASE_SECRET,
    PG_DUMP_DEFAULT,
    REGION,
    RESTORE_JOBS,
    S3_SECRET,
    SETTINGS,
    HostRunner,
    ImageRunner,
    Runner,
    Setting,
    measure_record,
)

from devstack import tools
from devstack.jobimage import JobImageError, build_job_image, given_job_image
from devstack.pgcluster import PgCluster
from devstack.s3server import AWS_VARIABLES_TO_CLEAR, dummy_aws_env

RESULTS_FORMAT = 2
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_WORK_DIR = BENCH_DIR / ".work"
DEFAULT_SCALES = ("100MB", "1GB")
QUICK_SCALE = "20MB"
MiB = 1024 * 1024
#: settings measured per runner besides the runner's default (``auto``); gzip:6 is
#: pg_dump's default, the two-step reference
DEFAULT_SETTINGS = {"host": ("gzip:6", "gzip:1", "none"), "image": ("zstd:1", "gzip:1", "none")}
QUICK_SETTINGS = {"host": ("gzip:6",), "image": ()}


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


def fresh_database(cluster: BenchCluster, name: str) -> None:
    with psycopg.connect(cluster.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(cluster: BenchCluster, name: str) -> None:
    with psycopg.connect(cluster.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))



# ----------------------------------------------------------------------------- the run
class Bench:
    """What every measurement shares: the cluster, the S3 server, scratch space, the
    environment (``runners.Context``)."""

    def __init__(self, args: argparse.Namespace, cluster: BenchCluster, scratch: Path) -> None:
        self.args = args
        self.cluster = cluster
        self.scratch = scratch
        self.store: stores.BenchStore | None = None
        self.pg_bin = tools.pg_bin_dir(args.pg_major)
        self.venv_bin = tools.venv_bin_dir()
        self.home = scratch / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.patched_src: Path | None = args.patched_src.resolve() if args.patched_src else None
        self.cli_env = dict(item.partition("=")[::2] for item in args.cli_env)

    # -- runners.Context ----------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.venv_bin}:{self.pg_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "TMPDIR": str(self.scratch),
        } | dummy_aws_env(REGION)

    def pg_env(self) -> dict[str, str]:
        return self.base_env() | {"PGPASSWORD": self.cluster.superuser_password}

    def db_url(self, database: str) -> str:
        """Password-less URL over TCP (the password travels in PGPASSWORD or the CLI's env)."""
        return self.cluster.url(database)

    def superuser_url(self, database: str) -> str:
        return self.cluster.superuser_url(database)

    def superuser_password(self) -> str:
        return self.cluster.superuser_password

    def endpoint_url(self) -> str:
        assert self.store is not None
        return self.store.endpoint_url

    def store_env(self) -> dict[str, str]:
        """What the CLI sets for this S3 server (:attr:`stores.BenchStore.cli_env`)."""
        assert self.store is not None
        return dict(self.store.cli_env)

    # -- the peer and the plain-boto3 transfers ------------------------------------
    def s3io_env(self, bucket: str) -> dict[str, str]:
        from agent_bom_backup.parts import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE
        from agent_bom_backup.units import parse_size

        assert self.store is not None
        env = self.base_env() | {
            "BENCH_S3_ENDPOINT": self.store.endpoint_url,
            "BENCH_S3_BUCKET": bucket,
            "BENCH_S3_DOWNLOAD": self.store.download,
            # limit B uploads like the CLI: its part size and concurrency (also when --cli-env changes them)
            "BENCH_PART_SIZE": str(parse_size(self.cli_env.get("AGENT_BOM_BACKUP_PART_SIZE", "")
                                              or f"{DEFAULT_PART_SIZE}B")),
            "BENCH_CONCURRENCY": self.cli_env.get("AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY", str(DEFAULT_CONCURRENCY)),
        }
        if self.patched_src:
            env["PYTHONPATH"] = str(self.patched_src)
        return env

    def peer(self, setting: Setting, database: str, bucket: str, key: str) -> dict[str, Any]:
        """The two-step approach: the host's pg_dump to a file, then ``aws s3 cp``."""
        dump_file = self.scratch / "peer.dump"
        try:
            dump = measure.run([str(self.pg_bin / "pg_dump"), "--format=custom", *setting.pg_dump_args,
                                "--no-password", f"--dbname={self.db_url(database)}", f"--file={dump_file}"],
                               self.pg_env()).check("peer pg_dump")
            size = dump_file.stat().st_size
            upload = measure.run(
                [str(self.venv_bin / "aws"), "s3", "cp", str(dump_file), f"s3://{bucket}/peer/{key}",
                 "--endpoint-url", self.endpoint_url(), "--only-show-errors"],
                self.base_env(),
            ).check("aws s3 cp")
        finally:
            dump_file.unlink(missing_ok=True)
        return two_steps(("dump", dump), ("upload", upload)) | {"bytes": size}

    def baseline_and_limit_b(self, runner: Runner, bucket: str, key: str, archive_major: int,
                             target: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The restore baseline (boto3 download + the runner's pg_restore -j 2 into a fresh
        database), then limit B: the upload of the downloaded bytes alone."""
        dump_file = self.scratch / "baseline.dump"
        fresh_database(self.cluster, target)
        try:
            download = measure.run([str(self.venv_bin / "python"), str(BENCH_DIR / "s3io.py"), "download", key,
                                    str(dump_file)], self.s3io_env(bucket)).check("boto3 download_file")
            restore = runner.pg_restore(dump_file, target, archive_major)
            upload = measure.run([str(self.venv_bin / "python"), str(BENCH_DIR / "s3io.py"), "upload",
                                  str(dump_file), f"limit-b/{key}"], self.s3io_env(bucket)).check("boto3 upload_file")
        finally:
            dump_file.unlink(missing_ok=True)
            drop_database(self.cluster, target)
        baseline = two_steps(("download", download), ("pg_restore", restore))
        transfer = json.loads(upload.stdout.strip().splitlines()[-1])
        limit_b = measure_record(upload) | {
            "seconds": transfer["seconds"],  # the transfer alone, without the interpreter's start-up
            "process_seconds": upload.seconds,
            "bytes": transfer["bytes"],
        }
        # the transfer's own CPU time, not the interpreter's start-up (which limit B excludes)
        limit_b["cpu"] = limit_b["cpu"] | {"tree:python_s": round(transfer["cpu_s"], 3)}
        return baseline, limit_b

    def restore_ours(self, runner: Runner, uri: str, target: str) -> dict[str, Any]:
        fresh_database(self.cluster, target)
        try:
            return runner.restore_ours(uri, target)
        finally:
            drop_database(self.cluster, target)


def two_steps(*steps: tuple[str, measure.Measured]) -> dict[str, Any]:
    """A record of steps run one after the other: total and per-step seconds, the peak
    RSS of any step, CPU summed."""
    measured = [m for _, m in steps]
    return {
        "seconds": sum(m.seconds for m in measured),
        **{f"{name}_seconds": m.seconds for name, m in steps},
        "peak_rss_main_mib": max(m.peak_rss_main for m in measured) / MiB,
        "peak_rss_tree_mib": max(m.peak_rss_tree for m in measured) / MiB,
        "cpu": _cpu_sum(*measured),
    }


def _cpu_sum(*measured: measure.Measured) -> dict[str, float]:
    total: dict[str, float] = {}
    for m in measured:
        for key, value in m.cpu.items():
            total[key] = round(total.get(key, 0.0) + value, 3)
    return total


@dataclass
class Entry:
    """One runner at one setting at one scale: its repetitions' records by kind."""

    runner: Runner
    setting: Setting
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dump_bytes: int | None = None

    @property
    def is_default(self) -> bool:
        return self.setting.name == self.runner.auto

    @property
    def kinds(self) -> tuple[str, ...]:
        backup = ("limit_a", "limit_b", "peer", "ours") if self.runner.name == "host" else ("limit_a", "limit_b", "ours")
        return backup + ("restore_ours", "restore_baseline")

    def to_dict(self) -> dict[str, Any]:
        return {
            "runner": self.runner.name,
            "setting": self.setting.name,
            "is_default": self.is_default,
            "dump_bytes": self.dump_bytes,
            "runs": self.runs,
            "stats": {kind: report.stats([r["seconds"] for r in runs]) for kind, runs in self.runs.items()},
        }


def plan(args: argparse.Namespace, runners: list[Runner]) -> tuple[list[tuple[Runner, Setting]], list[dict[str, str]]]:
    """(runner, setting) pairs to measure, in SETTINGS order, and what was left out and why."""
    wanted = args.settings.split(",") if args.settings else None
    for name in wanted or ():
        if name not in SETTINGS:
            raise SystemExit(f"bench: unknown setting {name!r}: choose from {', '.join(SETTINGS)}")
    pairs: list[tuple[Runner, Setting]] = []
    unavailable: list[dict[str, str]] = []
    for runner in runners:
        names = set(wanted) if wanted else {runner.auto, *(QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS)[runner.name]}
        for name, setting in SETTINGS.items():
            if name not in names:
                continue
            if runner.supports(setting):
                pairs.append((runner, setting))
            else:
                unavailable.append({"runner": runner.name, "setting": name,
                                    "reason": f"pg_dump {runner.pg_dump_version} was built without {setting.algorithm}"})
    if not pairs:
        raise SystemExit("bench: no compression setting to measure")
    return pairs, unavailable


def run_scale(bench: Bench, label: str, data: dict[str, Any], pairs: list[tuple[Runner, Setting]],
              reps: int, image: ImageRunner | None) -> dict[str, Any]:
    assert bench.store is not None
    store = bench.store
    database = data["database"]
    entries = [Entry(runner, setting) for runner, setting in pairs]
    for entry in entries:
        entry.runs = {kind: [] for kind in entry.kinds}
    log(f"{store.name} {label}: warming up (page cache, CLI byte-code, image layers)")
    for runner in dict.fromkeys(runner for runner, _ in pairs):
        with store.fresh_bucket() as bucket:
            runner.limit_a(SETTINGS.get(runner.auto, pairs[0][1]), database)
            runner.ours(None, database, bucket, f"warmup/{label}")
    startup: list[float] = []
    for rep in range(reps):
        if image is not None:
            startup.append(image.startup())
        for entry in entries:
            measure_entry(bench, entry, database, label, rep, reps)
            last = {kind: round(runs[-1]["seconds"], 2) for kind, runs in entry.runs.items() if runs}
            log(f"{store.name} {label} {entry.runner.name} {entry.setting.name} rep {rep + 1}/{reps}: {last}")
    return {"label": label, "s3": store.name, "data": data, "container_startup_s": report.stats(startup) if startup else None,
            "entries": [entry.to_dict() for entry in entries]}


def measure_entry(bench: Bench, entry: Entry, database: str, label: str, rep: int, reps: int) -> None:
    assert bench.store is not None
    runner, setting, runs = entry.runner, entry.setting, entry.runs
    prefix = f"bench/{label}/{runner.name}/{setting.name.replace(':', '-')}/r{rep}"
    with bench.store.fresh_bucket() as bucket:
        steps = [kind for kind in ("limit_a", "peer", "ours") if kind in runs]
        steps = steps[rep % len(steps):] + steps[:rep % len(steps)]  # rotate so no step always runs first
        uri, record = "", {}
        for step in steps:
            if step == "limit_a":
                runs["limit_a"].append(runner.limit_a(setting, database))
            elif step == "peer":
                runs["peer"].append(bench.peer(setting, database, bucket, prefix + ".dump"))
            else:
                keep = entry.is_default and rep == reps - 1
                record, uri = runner.ours(None if entry.is_default else setting, database, bucket, prefix,
                                          keep_samples=keep)
                runs["ours"].append(record)
                entry.dump_bytes = record.get("bytes")
        key = uri.removeprefix(f"s3://{bucket}/")
        archive_major = int(str(record.get("pg_dump") or runner.pg_dump_version).split(".")[0])
        kinds = ["restore_ours", "restore_baseline"]
        if rep % 2:
            kinds.reverse()  # alternate which restore runs first
        for kind in kinds:
            if kind == "restore_ours":
                runs[kind].append(bench.restore_ours(runner, uri, "bench_restore_ours"))
            else:
                baseline, limit_b = bench.baseline_and_limit_b(runner, bucket, key, archive_major,
                                                               "bench_restore_baseline")
                runs["restore_baseline"].append(baseline)
                runs["limit_b"].append(limit_b)


# ----------------------------------------------------------------------------- main
def rendered_pod(endpoint_url: str, image_tag: str) -> dict[str, Any]:
    """The chart's CronJob pod spec, rendered with helm for this S3 server and image."""
    from devstack.chart import CRONJOB_TEMPLATE, backup_values, pod_spec, render_chart

    repository, tag = image_tag.rsplit(":", 1)
    values = backup_values(
        image={"repository": repository, "tag": tag, "pullPolicy": "Never"},
        database={"existingSecret": DATABASE_SECRET},
        destination={
            "bucket": "agent-bom-bench", "bucketRegion": REGION, "endpointUrl": endpoint_url, "pathStyle": True,
            "encryption": {"enabled": False, "kmsKeyId": ""},
            "staticCredentials": {"enabled": True, "existingSecret": S3_SECRET},
        },
    )
    (cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
    return pod_spec(cronjob)


def host_info(bench: Bench) -> dict[str, Any]:
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
        "boto3": version("boto3"),
        "awscli": version("awscli"),
        "agent_bom_backup": version("agent_bom_backup"),
        "git_commit": commit + ("+uncommitted image/src changes" if dirty else ""),
        "patched_src": str(bench.patched_src) if bench.patched_src else None,
        "cli_env": list(bench.args.cli_env),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Measure agent-bom-backup (host CLI and job image) against pg_dump, boto3 and the two-step approach.",
    )
    parser.add_argument("--scale", action="append", type=str, metavar="SIZE",
                        help=f"database size to generate, e.g. 100MB or 1GB (repeatable; default: "
                             f"{' and '.join(DEFAULT_SCALES)}; --quick: {QUICK_SCALE})")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke mode: {QUICK_SCALE}, 1 repetition, moto only, each runner's default plus the "
                             "two-step reference (gzip:6); results named <date>-quick")
    parser.add_argument("--s3", action="append", default=None, metavar="SERVER",
                        help=f"S3 server(s): {', '.join(stores.STORES)} (repeatable or comma-separated; default: "
                             "both; --quick: moto)")
    parser.add_argument("--no-image", action="store_true", help="measure the host CLI only (no podman)")
    parser.add_argument("--image", default=None, metavar="TAG",
                        help="a job image built already (default: scripts/build-image.sh builds this checkout's)")
    parser.add_argument("--settings", default=None,
                        help=f"comma-separated compression settings for every runner, of {','.join(SETTINGS)} "
                             "(default: host gzip:6,gzip:1,none; image zstd:1,gzip:1,none; each runner's default "
                             "always; a runner skips settings its pg_dump lacks)")
    parser.add_argument("--pg-major", type=int, default=15, choices=(15, 18),
                        help="PostgreSQL server and host client major (15: Debian; 18: embedded wheel)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="cluster, generated databases and scratch files (cached between runs)")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the generated databases")
    parser.add_argument("--update-docs", action="store_true",
                        help="replace the generated block of docs/performance.md with this run's summary")
    parser.add_argument("--patched-src", type=Path, default=None,
                        help="run the CLI from a patched copy of the package (PYTHONPATH=DIR on the host; "
                             "mounted into the image's containers)")
    parser.add_argument("--quiet-wait", type=float, default=None, metavar="SECONDS",
                        help="before each command wait up to SECONDS for other load on the machine to drop "
                             f"below {measure.QUIET_BUSY_FRACTION * 100:.0f}%% of the CPUs (default 4; --quick: 0)")
    parser.add_argument("--cli-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for agent-bom-backup on the host and in the image (repeatable), "
                             "e.g. AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY=2, to measure a setting")
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
    args.stores = [name for item in (args.s3 or (["moto"] if args.quick else list(stores.STORES)))
                   for name in item.split(",") if name]
    for name in args.stores:
        if name not in stores.STORES:
            parser.error(f"--s3 {name}: choose from {', '.join(stores.STORES)}")
    if any("=" not in item for item in args.cli_env):
        parser.error("--cli-env takes NAME=VALUE")
    if args.patched_src and not args.patched_src.is_dir():
        parser.error(f"--patched-src {args.patched_src} is not a directory")
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

    # everything that can fail fast first: the S3 servers this checkout has, the image
    try:
        servers = [stores.open_store(name, args.work_dir) for name in args.stores]
    except stores.StoreUnavailable as exc:
        raise SystemExit(f"bench: {exc}") from None
    job_image = None
    if not args.no_image:
        log("job image: " + (f"using {args.image}" if args.image else "building (cached while image/** is unchanged)"))
        try:
            job_image = given_job_image(args.image) if args.image else build_job_image()
        except JobImageError as exc:
            raise SystemExit(f"bench: {exc} (or run with --no-image)") from None
        log(f"job image {job_image.tag} = {job_image.image_id[:12]}")

    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=args.work_dir))
    cluster, state = open_cluster(args.pg_major, args.work_dir)
    results: dict[str, Any] = {}
    try:
        bench = Bench(args, cluster, scratch)
        runners: list[Runner] = [HostRunner(bench, bench.pg_bin, cluster.major)]
        image = None
        if job_image is not None:
            try:
                image = ImageRunner(bench, job_image, {}, cluster.major)
            except RuntimeError as exc:
                raise SystemExit(f"bench: {exc}") from None
            runners.append(image)
        pairs, unavailable = plan(args, runners)
        for runner in runners:
            log(f"{runner.label}: auto = {runner.auto}; measuring "
                f"{', '.join(s.name for r, s in pairs if r is runner) or 'nothing'}")
        datasets = [ensure_database(cluster, state, args.work_dir, label, datagen.parse_scale(label), args.regenerate)
                    for label in args.scales]
        results = {
            "format": RESULTS_FORMAT,
            "name": stem,
            "date": date.isoformat(timespec="seconds"),
            "quick": args.quick,
            "reps": args.reps,
            "quiet_wait_s": args.quiet_wait,
            "restore_jobs": RESTORE_JOBS,
            "host": host_info(bench),
            "runners": [runner.describe() for runner in runners],
            "stores": [],
            "pg_dump_default": PG_DUMP_DEFAULT,
            "unavailable": unavailable,
            "scales": [],
        }
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        for store in servers:
            log(f"starting {store.name}")
            store.start()
            bench.store = store
            try:
                results["stores"].append({"name": store.name, "version": store.version, "download": store.download})
                measure.SERVER_PIDS.clear()
                measure.SERVER_PIDS.update({"postgres": postmaster} | store.pids)
                if image is not None:
                    image.pod_spec = rendered_pod(store.endpoint_url, job_image.tag)  # type: ignore[union-attr]
                for label, data in zip(args.scales, datasets):
                    results["scales"].append(run_scale(bench, label, data, pairs, args.reps, image))
            finally:
                store.stop()
        results["total_seconds"] = round(time.monotonic() - started, 1)
        results["host"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results["targets"] = report.evaluate_targets(results)
    finally:
        for store in servers:
            store.stop()
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


if __name__ == "__main__":
    sys.exit(main())

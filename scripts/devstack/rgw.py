"""A real S3-compatible server: Ceph RADOS Gateway (Debian 12's Ceph 16, Pacific) on 127.0.0.1.

One monitor, one OSD on ``memstore`` (objects live in RAM: keep test objects modest) and
radosgw's beast frontend, with no manager and authentication ``none``; cold start ~2 s.
``scripts/bootstrap.sh rgw`` installs the programs. Everything lives under ``base_dir``
(``ceph.conf``, ``log/``, ``run/``, the monitor's store); :meth:`RgwServer.stop` ends the
daemons and the folder can be deleted.

What the configuration does, and why (measured on RGW 16.2 with boto3 1.44):

* ``ms mon client mode = crc secure``: with auth ``none`` radosgw cannot reach the
  monitor otherwise.
* ``paxos propose interval = 0.05``: with the stock 1 s every pool radosgw creates on its
  first start waits for a proposal, and the cold start takes ~14 s instead of ~2 s.
* ``rgw crypt require ssl = false``: server-side encryption headers over plain http are
  *accepted* (and, for SSE-S3, silently not applied) instead of answered with
  ``400 InvalidRequest``; :meth:`RgwServer.set_config` flips it back at run time.
* a ``testing`` KMS backend with one key (:attr:`RgwServer.kms_key_id`): SSE-KMS is
  applied and confirmed in the answers, so both sides of "encryption confirmed" run here.
  RGW 16 has no SSE-S3 backend: ``AES256`` is never applied nor confirmed.
* the zonegroup keeps its stock API name ``default``, which ``GetBucketLocation``
  reports as the bucket's location (what a stock cluster does).
* with ``tls=True`` a second beast endpoint serves https with a certificate from a fresh
  test CA (:attr:`RgwServer.ca_file`).

The daemons run in the foreground (``-f``) as children of this process, each in its own
session, so :meth:`stop` ends exactly them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from devstack import tools
from devstack.pgcluster import free_port
from devstack.process import StartStop, log_tail, stop_process_group
from devstack.s3server import ACCESS_KEY, DEFAULT_REGION, SECRET_KEY, abort_open_uploads
from devstack.tls import ServesTls, write_server_tls

HOST = "127.0.0.1"
#: the stock zonegroup's API name, which GetBucketLocation reports
ZONEGROUP_API_NAME = "default"
#: RAM the memstore OSD may use for objects (it allocates as objects arrive)
DEFAULT_MEMSTORE_BYTES = 4 * 1024**3
#: the testing KMS backend's one key (the name examples/ceph-rgw.yaml uses)
KMS_KEY_ID = "6f1c3a52-2d1e-4b7a-9c57-0e2f4d8a9b13"
START_TIMEOUT_S = 120
#: daemon name -> (program, identity argv)
DAEMONS = {
    "mon.a": ("ceph-mon", ["-i", "a"]),
    "osd.0": ("ceph-osd", ["-i", "0"]),
    "client.rgw": ("radosgw", ["-n", "client.rgw"]),
}


class RgwError(RuntimeError):
    """The cluster could not be created, started or asked something; carries the daemons' log tails."""


class RgwServer(StartStop, ServesTls):
    """A throwaway single-node Ceph cluster with radosgw, in ``base_dir``.

    ``endpoint_url`` is plain http; with ``tls=True`` ``https_endpoint_url`` serves the
    same store over https (verify with ``ca_file``). The S3 user's keys default to moto's
    dummy ones (:data:`devstack.s3server.ACCESS_KEY`), so the same AWS environment talks
    to either server. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    tls_error = RgwError

    def __init__(
        self,
        base_dir: Path | str,
        *,
        tls: bool = False,
        memstore_bytes: int = DEFAULT_MEMSTORE_BYTES,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.tls = tls
        self.memstore_bytes = memstore_bytes
        self.access_key = access_key
        self.secret_key = secret_key
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.mon_port = free_port()
        self.kms_key = os.urandom(32)
        self.conf_file = self.base_dir / "ceph.conf"
        self.log_dir = self.base_dir / "log"
        self.run_dir = self.base_dir / "run"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------ URLs
    @property
    def endpoint_url(self) -> str:
        """The plain-http S3 endpoint."""
        return f"http://{HOST}:{self.port}"

    @property
    def https_endpoint_url(self) -> str:
        """The https S3 endpoint (``tls=True`` only)."""
        if self.tls_port is None:
            raise RgwError("this RgwServer was not created with tls=True")
        return f"https://{HOST}:{self.tls_port}"

    @property
    def kms_key_id(self) -> str:
        """The key id the testing KMS backend knows (for ``aws:kms``)."""
        return KMS_KEY_ID

    @property
    def running(self) -> bool:
        return bool(self._processes) and all(p.poll() is None for p in self._processes.values())

    # ------------------------------------------------------------ configuration
    def _frontend(self) -> str:
        frontend = f"beast endpoint={HOST}:{self.port}"
        if self.tls_port is not None:
            frontend += f" ssl_endpoint={HOST}:{self.tls_port} ssl_certificate={self.base_dir / 'tls.pem'}"
        return frontend

    def _write_tls_files(self) -> None:
        """The https endpoint's certificate and key in one PEM; :attr:`ca_file` verifies it."""
        self._ca_file = write_server_tls("agent-bom RGW test CA", self.base_dir / "ca.crt", self.base_dir / "tls.pem")

    def _write_config(self) -> None:
        base = self.base_dir
        kms_key = base64.b64encode(self.kms_key).decode()
        lines = {
            "global": {
                "fsid": str(uuid.uuid4()),
                "mon host": f"v2:{HOST}:{self.mon_port}",
                "public addr": HOST,
                "cluster addr": HOST,
                "ms bind ipv4": "true",
                "ms bind ipv6": "false",
                "ms bind msgr1": "false",
                "auth cluster required": "none",
                "auth service required": "none",
                "auth client required": "none",
                "auth allow insecure global id reclaim": "false",
                "ms mon client mode": "crc secure",
                "run dir": f"{base}/run",
                "pid file": f"{base}/run/$name.pid",
                "admin socket": f"{base}/run/$name.asok",
                "log file": f"{base}/log/$name.log",
                "keyring": f"{base}/keyring",
                "osd pool default size": "1",
                "osd pool default min size": "1",
                "osd pool default pg num": "8",
                "osd pool default pgp num": "8",
                "osd pool default pg autoscale mode": "off",
                "osd crush chooseleaf type": "0",
                "mon allow pool size one": "true",
                "mon allow pool delete": "true",
                "mon warn on pool no redundancy": "false",
                "mon max pg per osd": "1000",
                "mon data avail warn": "2",
                "mon data avail crit": "1",
            },
            "mon": {"mon data": f"{base}/$name", "mon initial members": "a",
                    "paxos propose interval": "0.05", "paxos min wait": "0.01"},
            "osd": {
                "osd data": f"{base}/$name",
                "osd objectstore": "memstore",
                "memstore device bytes": str(self.memstore_bytes),
                "osd max object name len": "460",
                "osd max object namespace len": "64",
            },
            "client.rgw": {
                "rgw frontends": self._frontend(),
                "rgw data": f"{base}/rgw",
                "rgw dns name": HOST,
                "rgw enable usage log": "false",
                "rgw crypt require ssl": "false",
                "rgw crypt s3 kms backend": "testing",
                "rgw crypt s3 kms encryption keys": f"{KMS_KEY_ID}={kms_key}",
            },
        }
        text = "".join(
            f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
            for section, values in lines.items()
        )
        self.conf_file.write_text(text)
        self.conf_file.chmod(0o600)

    # ------------------------------------------------------------ process helpers
    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                "TZ": "UTC", "HOME": str(self.base_dir), "CEPH_CONF": str(self.conf_file)}

    def _logs(self) -> str:
        tails = [log_tail(self.log_dir / f"{name}.log", 15) for name in DAEMONS]
        tails += [log_tail(self.log_dir / f"{name}.stderr", 10) for name in DAEMONS]
        return "".join(tails)

    def _run(self, program: str, *args: str, timeout: float = 60, what: str | None = None) -> str:
        """Run a Ceph command line tool against this cluster; its stdout."""
        argv = [str(tools.ceph_program(program)), "-c", str(self.conf_file), *args]
        try:
            result = subprocess.run(argv, env=self._env(), cwd=self.base_dir, capture_output=True, text=True,
                                    timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RgwError(f"{what or program} did not finish within {timeout}s{self._logs()}") from None
        if result.returncode != 0:
            raise RgwError(f"{what or program} failed (exit {result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}{self._logs()}")
        return result.stdout

    def _ceph(self, *args: str, timeout: float = 30) -> str:
        return self._run("ceph", "--connect-timeout", "15", *args, timeout=timeout, what=f"ceph {args[0]}")

    def _spawn(self, name: str) -> None:
        program, identity = DAEMONS[name]
        argv = [str(tools.ceph_program(program)), "-c", str(self.conf_file), "-f", *identity]
        with (self.log_dir / f"{name}.stderr").open("ab") as log:
            self._processes[name] = subprocess.Popen(
                argv, env=self._env(), cwd=self.base_dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def _wait(self, what: str, ready: Any, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise RgwError(f"{name} exited with {process.returncode} while waiting for {what}{self._logs()}")
            if ready():
                return
            time.sleep(0.25)
        raise RgwError(f"timed out after {timeout:.0f}s waiting for {what}{self._logs()}")

    # ------------------------------------------------------------ lifecycle
    def start(self) -> RgwServer:
        """Create the cluster, start mon, OSD and radosgw, create the S3 user; wait until
        S3 answers on every endpoint. On failure the daemons started so far are stopped."""
        if self._processes:
            return self
        for folder in (self.base_dir, self.log_dir, self.run_dir, self.base_dir / "mon.a",
                       self.base_dir / "osd.0", self.base_dir / "rgw"):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            if self.tls:
                self._write_tls_files()
            self._write_config()
            self._start_mon()
            self._start_osd()
            self._start_rgw()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_mon(self) -> None:
        fsid = next(line.split(" = ", 1)[1] for line in self.conf_file.read_text().splitlines()
                    if line.startswith("fsid = "))
        keyring, monmap = str(self.base_dir / "keyring"), str(self.base_dir / "monmap")
        self._run("ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
        self._run("monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a",
                  f"[v2:{HOST}:{self.mon_port}]", monmap)
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring, what="ceph-mon --mkfs")
        self._spawn("mon.a")
        self._wait("the monitor", lambda: self._answers("mon", "stat"))

    def _start_osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise RgwError(f"the monitor gave the OSD id {osd_id}, expected 0{self._logs()}")
        self._run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid, what="ceph-osd --mkfs")
        self._spawn("osd.0")
        self._wait("osd.0 to be up", self._osd_up)

    def _start_rgw(self) -> None:
        self._spawn("client.rgw")
        endpoints = [self.endpoint_url] + ([self.https_endpoint_url] if self.tls else [])
        for endpoint in endpoints:
            self._wait(f"S3 at {endpoint}", lambda e=endpoint: self._s3_answers(e))
        self._run("radosgw-admin", "user", "create", "--uid=agent-bom", "--display-name=agent-bom tests",
                  f"--access-key={self.access_key}", f"--secret={self.secret_key}", what="radosgw-admin user create")

    def _answers(self, *args: str) -> bool:
        try:
            self._run("ceph", "--connect-timeout", "3", *args, timeout=10)
        except RgwError:
            return False
        return True

    def _osd_up(self) -> bool:
        try:
            dump = json.loads(self._run("ceph", "--connect-timeout", "3", "osd", "dump", "--format=json", timeout=10))
        except (RgwError, ValueError):
            return False
        return any(osd.get("osd") == 0 and osd.get("up") == 1 for osd in dump.get("osds", []))

    def _s3_answers(self, endpoint: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_file)) if endpoint.startswith("https") else None
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=3, context=context) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def stop(self) -> None:
        """Stop radosgw, the OSD and the monitor (SIGTERM, then SIGKILL). Idempotent."""
        for name in reversed(list(self._processes)):
            stop_process_group(self._processes.pop(name))

    # ------------------------------------------------------------ run-time settings
    def set_config(self, name: str, value: str) -> None:
        """Change a radosgw setting at run time through its admin socket (e.g.
        ``rgw_crypt_require_ssl``, read on every request)."""
        self._run("ceph", "daemon", str(self.run_dir / "client.rgw.asok"), "config", "set", name, value,
                  what=f"setting {name}")

    @contextlib.contextmanager
    def config(self, name: str, value: str, restore: str):  # type: ignore[no-untyped-def]
        """:meth:`set_config` for the duration of a ``with`` block, then ``restore``."""
        self.set_config(name, value)
        try:
            yield self
        finally:
            self.set_config(name, restore)

    # ------------------------------------------------------------ S3 helpers
    def client(self, *, tls: bool = False, region: str = DEFAULT_REGION,
               checksum_mode: str = "when_required") -> BaseClient:
        """A boto3 S3 client (path-style; checksums only when required by default: RGW 16
        answers ``411 MissingContentLength`` to botocore's default aws-chunked uploads over
        https, which ``checksum_mode="when_supported"`` reproduces)."""
        config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"},
                        request_checksum_calculation=checksum_mode, response_checksum_validation=checksum_mode)
        return boto3.client(
            "s3", endpoint_url=self.https_endpoint_url if tls else self.endpoint_url, config=config,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key, region_name=region,
            verify=str(self.ca_file) if tls else None,
        )

    def create_bucket(self, name: str, region: str = DEFAULT_REGION) -> str:
        """Create bucket ``name`` in the stock zonegroup (RGW has one location: ``region``
        is accepted for the moto server's signature and must be the default)."""
        if region != DEFAULT_REGION:
            raise RgwError(f"the RGW test cluster has one zonegroup; cannot create a bucket in {region}")
        self.client().create_bucket(Bucket=name)
        return name

    def collect_garbage(self) -> None:
        """Free deleted objects' data now: RGW's garbage collector runs after 2 hours by
        default, and the memstore OSD holds the data in RAM until then."""
        self._run("radosgw-admin", "gc", "process", "--include-all", timeout=300, what="radosgw-admin gc process")

    def delete_bucket(self, name: str) -> None:
        """Abort open multipart uploads, delete every object, then the bucket (frees RAM)."""
        s3 = self.client()
        abort_open_uploads(s3, name)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)

"""The S3-compatible server the benchmark talks to: moto (in memory, one Python process)
or Ceph RGW (a real object store: monitor, memstore OSD and radosgw), both on loopback.

Both servers come from ``scripts/devstack`` and share one interface (``start()``,
``stop()``, ``endpoint_url``, ``client()``, ``create_bucket()``, ``delete_bucket()``) and
moto's dummy credentials. :class:`BenchStore` adds what the benchmark needs on top: a
fresh bucket per measurement (deleted afterwards, so the server's memory does not fill
up), the server's processes (their CPU time is accounted apart from the command's) and
how the restore baseline downloads from it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

from devstack.s3server import DEFAULT_REGION, MotoServer

STORES = ("moto", "rgw")
#: RAM the RGW memstore OSD may use: the largest measurement keeps three objects of an
#: uncompressed 1 GB dump (~750 MB each) until it deletes its bucket
RGW_MEMSTORE_BYTES = 6 * 1024**3
#: the S3 servers' process names, reported apart from the command's own CPU time
SERVER_PROCESS_NAMES = {"moto_server": "moto", "radosgw": "radosgw", "ceph-osd": "ceph-osd", "ceph-mon": "ceph-mon"}


class StoreUnavailable(RuntimeError):
    """The requested S3 server cannot run in this checkout; the message says why."""


@dataclass
class BenchStore:
    name: str
    server: Any
    #: how the restore baseline downloads: one GET (moto copies the whole object for every
    #: ranged GET: 8 MiB ranges of a 753 MB object took 40 s instead of ~1 s here) or
    #: boto3's parallel ranged GETs (what ``aws s3 cp`` does; cheap on a real store)
    download: str
    version: str
    #: what the CLI sets for this server (moto: one-stream downloads, ``MotoServer.JOB_ENV``)
    cli_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return str(self.server.endpoint_url)

    def start(self) -> BenchStore:
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        self.server.start()
        for child in psutil.Process().children(recursive=True):
            if child.pid in before:
                continue
            with contextlib.suppress(psutil.Error):
                label = SERVER_PROCESS_NAMES.get(child.name())
                if label:
                    self.pids[label] = child.pid
        return self

    def stop(self) -> None:
        self.server.stop()
        if self.name == "rgw":
            shutil.rmtree(self.server.base_dir, ignore_errors=True)

    @contextlib.contextmanager
    def fresh_bucket(self) -> Iterator[str]:
        """A new empty bucket, deleted with everything in it afterwards."""
        name = self.server.create_bucket(f"agent-bom-bench-{uuid.uuid4().hex[:12]}", DEFAULT_REGION)
        try:
            yield name
        finally:
            self.server.delete_bucket(name)
            self._collect_garbage()

    def _collect_garbage(self) -> None:
        """RGW frees deleted objects' data only when its garbage collector runs: run it now,
        or the memstore OSD fills up during the run."""
        if self.name == "rgw":
            self.server.collect_garbage()  # type: ignore[union-attr]


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _radosgw_version() -> str:
    try:
        out = subprocess.run(["radosgw", "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    words = out.stdout.split()
    return words[2] if len(words) > 2 and words[0] == "ceph" else out.stdout.strip() or "?"


def open_store(name: str, work_dir: Path) -> BenchStore:
    """The server called ``name`` (not started), its files under ``work_dir``."""
    if name == "moto":
        return BenchStore("moto", MotoServer(work_dir / "moto"), download="single",
                          version=f"moto {_package_version('moto')} (in memory)", cli_env=dict(MotoServer.JOB_ENV))
    if name == "rgw":
        try:
            from devstack.rgw import RgwServer
        except ImportError as exc:
            raise StoreUnavailable(
                f"--s3 rgw needs devstack.rgw.RgwServer (scripts/devstack/rgw.py, from the Ceph RGW work), "
                f"which this checkout does not have ({exc}); run with --s3 moto"
            ) from None
        base = work_dir / f"rgw-{uuid.uuid4().hex[:8]}"  # a throwaway cluster per run
        return BenchStore("rgw", RgwServer(base, memstore_bytes=RGW_MEMSTORE_BYTES), download="ranged",
                          version=f"Ceph RGW {_radosgw_version()} (memstore OSD, in memory)")
    raise StoreUnavailable(f"unknown S3 server {name!r}: choose from {', '.join(STORES)}")

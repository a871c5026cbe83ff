"""A real Prometheus Pushgateway on 127.0.0.1 (Debian ``prometheus-pushgateway``), and a
loopback HTTP receiver that records the requests a ping service or webhook would get.

The job pushes its metrics to the Pushgateway with prometheus-client; the tests read the
pushed series back from its ``/metrics``, as Prometheus would scrape them. Nothing persists:
the Pushgateway keeps its metrics in memory (no ``--persistence.file``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from devstack import tools
from devstack.pgcluster import free_port
from devstack.process import StartStop, start_logged, stop_process_group

HOST = "127.0.0.1"
START_TIMEOUT_S = 30


class PushgatewayError(RuntimeError):
    """The Pushgateway did not start or answer; carries its log tail."""


class Pushgateway(StartStop):
    """``prometheus-pushgateway --web.listen-address=127.0.0.1:PORT``; its log under ``work_dir``."""

    def __init__(self, work_dir: Path | str, port: int | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.port = port if port is not None else free_port()
        self.log_file = self.work_dir / "pushgateway.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Pushgateway:
        if self._process is not None:
            return self
        self.work_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(tools.pushgateway_binary()), f"--web.listen-address={HOST}:{self.port}"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.work_dir)}
        self._process = start_logged(argv, env, self.log_file, self._answers, name="prometheus-pushgateway",
                                     timeout_s=START_TIMEOUT_S, error=PushgatewayError)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def metrics_text(self) -> str:
        """What Prometheus would scrape: ``/metrics`` (the pushed series and the gateway's own)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
            return str(response.read().decode())

    def samples(self, name_prefix: str = "agent_bom_backup_") -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The pushed samples whose name starts with ``name_prefix``: (name, labels) -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name.startswith(name_prefix):
                    found[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
        return found

    def wipe(self) -> None:
        """Delete every pushed group (``PUT /api/v1/admin/wipe``)."""
        request = urllib.request.Request(f"{self.url}/api/v1/admin/wipe", method="PUT")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
            pass

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process_group(process)


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]


class HttpReceiver(StartStop):
    """A loopback HTTP server that answers every request (200, or ``status`` for paths in
    ``failing``) and records it: a stand-in for healthchecks.io, Cronitor, Uptime Kuma or a
    Slack incoming webhook."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.requests: list[Received] = []
        #: path -> HTTP status answered instead of 200
        self.failing: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with receiver._lock:
                    receiver.requests.append(Received(self.command, parts.path, parse_qs(parts.query), body,
                                                      {k.lower(): v for k, v in self.headers.items()}))
                status = receiver.failing.get(parts.path, 200)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_PUT = do_HEAD = _handle

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="http-receiver", daemon=True).start()
        return self

    def take(self) -> list[Received]:
        """The requests received since the last call."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

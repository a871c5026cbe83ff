"""A loopback proxy in front of moto that misbehaves on cue.

``tests/support/s3proxy.py`` plays a strict S3-compatible store; this one plays a bad
day: it delays requests (so a dump is still streaming when the test strikes), answers
with S3 error codes (``503 SlowDown``, ``500 InternalError``), holds a request until the
test releases it, and can be killed with requests in flight (their connections are cut,
new ones refused), like an endpoint that went away. Every request is recorded.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body_size: int
    status: int  # 0: no answer (connection cut)
    at: float

    @property
    def is_part(self) -> bool:
        return self.method == "PUT" and "partNumber" in self.query

    @property
    def part_number(self) -> int | None:
        return int(self.query["partNumber"][0]) if self.is_part else None


@dataclass
class Rule:
    """What to do with requests that match ``method``, ``query_key`` and ``path_suffix``.

    The first ``after`` matches pass untouched; the next ``remaining`` get the treatment:
    wait ``delay_s``, wait until ``hold`` is set, then answer ``status``/``code`` (or pass
    the request on when ``status`` is None).
    """

    method: str | None = None
    query_key: str | None = None
    path_suffix: str | None = None
    status: int | None = None
    code: str = "InternalError"
    message: str = "injected by the fault proxy"
    delay_s: float = 0.0
    hold: threading.Event | None = None
    after: int = 0
    remaining: int = 10**9
    seen: int = 0
    hits: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str, query: dict[str, list[str]]) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.query_key is None or self.query_key in query)
            and (self.path_suffix is None or urlsplit(path).path.endswith(self.path_suffix))
        )


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """A cut connection is the point of a kill, not an error worth a traceback."""


class FaultProxy:
    """``FaultProxy(upstream).start()``; ``endpoint_url`` is what the CLI talks to."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.rules: list[Rule] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ queries
    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def parts_uploaded(self) -> int:
        """Successful UploadPart requests so far."""
        with self._lock:
            return sum(1 for r in self.requests if r.is_part and r.status == 200)

    def statuses(self, predicate: Callable[[Recorded], bool]) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests if predicate(r)]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"fault proxy: timed out waiting for {what}")
            time.sleep(0.02)

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int | None = None) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                return

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._sockets.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._sockets.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                record = Recorded(self.command, self.path, query, len(body), 0, time.monotonic())
                with proxy._lock:
                    proxy.requests.append(record)
                rule = proxy._rule_for(self.command, self.path, query)
                if rule is not None:
                    rule.arrived.set()
                    if rule.delay_s:
                        time.sleep(rule.delay_s)
                    if rule.hold is not None:
                        rule.hold.wait(timeout=300)
                    if rule.status is not None:
                        payload = (
                            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{rule.code}</Code>"
                            f"<Message>{rule.message}</Message></Error>"
                        ).encode()
                        self._reply(rule.status, payload)
                        record.status = rule.status
                        return
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length_header = dict((k.lower(), v) for k, v in headers).get("content-length")
                self.send_header("Content-Length", length_header if self.command == "HEAD" and length_header else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                record.status = status

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        server = _QuietServer(("127.0.0.1", port or 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def _rule_for(self, method: str, path: str, query: dict[str, list[str]]) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, query):
                    rule.seen += 1
                    if rule.seen > rule.after and rule.remaining > 0:
                        rule.remaining -= 1
                        rule.hits += 1
                        return rule
        return None

    def _forward(self, method: str, path: str, headers, body: bytes):  # type: ignore[no-untyped-def]
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={k: v for k, v in headers.items() if k.lower() != "connection"})
            response = conn.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            conn.close()

    def kill(self) -> None:
        """Stop listening and cut every open connection, in flight or idle."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for rule in self.rules:  # release held requests so their threads end (into a cut socket)
            if rule.hold is not None:
                rule.hold.set()

    stop = kill

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()

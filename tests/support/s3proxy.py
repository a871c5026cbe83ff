"""A loopback proxy in front of moto: a strict S3-compatible store, a bad day, or both.

``S3Proxy(upstream).start()`` passes every request on to moto and records it
(:class:`Recorded`: method, path, query, body size, status), so tests can see the
multipart part sizes and what the store answered; ``endpoint_url`` is what the CLI talks to.

* ``strict=True`` plays a strict S3-compatible store: like several MinIO/Ceph/R2/B2/
  GCS-interop versions it rejects requests that carry the flexible-checksum headers recent
  botocore sends by default (``x-amz-checksum-*``, ``x-amz-sdk-checksum-algorithm``) or an
  ``aws-chunked`` body (``400 InvalidRequest``; the reasons are kept in ``rejected``).
* :class:`Rule` s misbehave on cue: delay requests (so a dump is still streaming when the
  test strikes, or so ranged GETs are slow), hold one until the test releases it, answer with an S3 error code
  (``503 SlowDown``, ``500 InternalError``, ``403``...).
* :meth:`S3Proxy.kill` stops listening and cuts every open connection, in flight or idle,
  like an endpoint that went away.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

REJECTED_HEADER_PREFIXES = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm")
#: hop-by-hop or recomputed headers that are not copied from moto's answer
_NOT_PASSED_BACK = ("transfer-encoding", "connection", "content-length")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body_size: int
    status: int  # 0: no answer yet, or none ever (connection cut)
    at: float
    ranged: bool = False  # a GET with a Range header

    @property
    def is_part(self) -> bool:
        """An UploadPart request."""
        return self.method == "PUT" and "partNumber" in self.query

    @property
    def part_number(self) -> int | None:
        return int(self.query["partNumber"][0]) if self.is_part else None


@dataclass
class Rule:
    """What to do with requests that match ``method``, ``query_key``, ``path_suffix`` and
    ``ranged`` (None: ranged or not).

    The first ``after`` matches pass untouched; the next ``remaining`` get the treatment:
    wait ``delay_s``, wait until ``hold`` is set, then answer ``status``/``code`` (or pass
    the request on when ``status`` is None). ``arrived`` is set when one is treated.
    """

    method: str | None = None
    query_key: str | None = None
    path_suffix: str | None = None
    ranged: bool | None = None
    status: int | None = None
    code: str = "InternalError"
    message: str = "injected by the S3 proxy"
    delay_s: float = 0.0
    hold: threading.Event | None = None
    after: int = 0
    remaining: int = 10**9
    seen: int = 0
    hits: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str, query: dict[str, list[str]], ranged: bool = False) -> bool:
        return (
            (self.ranged is None or self.ranged == ranged)
            and (self.method is None or self.method == method)
            and (self.query_key is None or self.query_key in query)
            and (self.path_suffix is None or urlsplit(path).path.endswith(self.path_suffix))
        )

    def take(self) -> bool:
        """Count a matching request; whether it gets the treatment."""
        self.seen += 1
        if self.seen > self.after and self.remaining > 0:
            self.remaining -= 1
            self.hits += 1
            return True
        return False

    def wait(self) -> None:
        """Signal the arrival, then wait as told: the delay, then the hold."""
        self.arrived.set()
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.hold is not None:
            self.hold.wait(timeout=300)


def strict_store_violation(headers: Message) -> str | None:
    """Why a strict S3-compatible store rejects a request with these headers (None: it does not)."""
    for name in headers.keys():
        if name.lower().startswith(REJECTED_HEADER_PREFIXES):
            return f"unsupported header {name}"
    if "aws-chunked" in (headers.get("Content-Encoding") or "").lower():
        return "unsupported Content-Encoding aws-chunked"
    return None


def error_document(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


class S3Proxy:
    """``S3Proxy(upstream, strict=..., rules=[...]).start()`` (or ``with``); ``add`` more rules any time."""

    def __init__(self, upstream: str, *, strict: bool = False, rules: Iterable[Rule] = ()) -> None:
        self.upstream = urlsplit(upstream)
        self.strict = strict
        self.rules: list[Rule] = list(rules)
        self.requests: list[Recorded] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._server: _ProxyServer | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ queries
    @property
    def endpoint_url(self) -> str:
        assert self.port is not None, "the proxy was not started"
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def part_sizes(self) -> list[int]:
        """Body sizes of successful UploadPart requests, in part-number order."""
        with self._lock:
            parts = [(r.part_number, r.body_size) for r in self.requests if r.is_part and r.status == 200]
        return [size for _, size in sorted(parts)]

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
                raise TimeoutError(f"S3 proxy: timed out waiting for {what}")
            time.sleep(0.02)

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int | None = None) -> S3Proxy:
        server = _ProxyServer(self, port or 0)
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="s3-proxy", daemon=True).start()
        return self

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
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for rule in self.rules:  # release held requests so their threads end (into a cut socket)
            if rule.hold is not None:
                rule.hold.set()

    stop = kill

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()

    # ------------------------------------------------------------------ used by the handler
    def _record(self, method: str, path: str, body_size: int, ranged: bool = False) -> Recorded:
        query = parse_qs(urlsplit(path).query, keep_blank_values=True)
        record = Recorded(method, path, query, body_size, 0, time.monotonic(), ranged)
        with self._lock:
            self.requests.append(record)
        return record

    def _rejection(self, headers: Message) -> str | None:
        reason = strict_store_violation(headers) if self.strict else None
        if reason:
            with self._lock:
                self.rejected.append(reason)
        return reason

    def _rule_for(self, record: Recorded) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(record.method, record.path, record.query, record.ranged) and rule.take():
                    return rule
        return None

    def _forward(self, method: str, path: str, headers: Message,
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to moto; its status, headers and body."""
        passed_on = {k: v for k, v in headers.items() if k.lower() != "connection"}
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=passed_on)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: S3Proxy, port: int) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """A cut connection is the point of a kill, not an error worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return

    def setup(self) -> None:
        super().setup()
        self.server.proxy._connection_opened(self.connection)

    def finish(self) -> None:
        self.server.proxy._connection_closed(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = proxy._record(self.command, self.path, len(body), "Range" in self.headers)
        reason = proxy._rejection(self.headers)
        if reason:
            record.status = self._reply_error(400, "InvalidRequest", reason)
            return
        rule = proxy._rule_for(record)
        if rule is not None:
            rule.wait()
            if rule.status is not None:
                record.status = self._reply_error(rule.status, rule.code, rule.message)
                return
        record.status = self._pass_on(body)

    def _pass_on(self, body: bytes) -> int:
        """Forward the request to moto and its answer to the client; returns the status."""
        status, headers, data = self.server.proxy._forward(self.command, self.path, self.headers, body)
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in _NOT_PASSED_BACK:
                self.send_header(key, value)
        # HEAD answers carry the object's length, not the (empty) body's
        length = dict((k.lower(), v) for k, v in headers).get("content-length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return status

    def _reply_error(self, status: int, code: str, message: str) -> int:
        payload = error_document(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return status

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

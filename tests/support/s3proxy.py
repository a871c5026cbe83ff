"""A loopback proxy in front of moto that plays a strict S3-compatible store.

Like several MinIO/Ceph/R2/B2/GCS-interop versions, it rejects requests that carry
the flexible-checksum headers recent botocore sends by default
(``x-amz-checksum-*``, ``x-amz-sdk-checksum-algorithm``) or an ``aws-chunked``
body. It also records every request (method, path, query, body size) so tests can
see the multipart part sizes, and can fail requests on demand (fault injection).
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

REJECTED_HEADER_PREFIXES = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body_size: int
    status: int


@dataclass
class Fault:
    """Answer matching requests with ``status`` (after ``after`` matching requests passed)."""

    method: str
    query_key: str | None
    status: int
    after: int = 0
    remaining: int = 10**9
    seen: int = 0


@dataclass
class StrictS3Proxy:
    upstream: str  # http://127.0.0.1:PORT of moto
    strict: bool = True
    requests: list[Recorded] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def part_sizes(self) -> list[int]:
        """Body sizes of successful UploadPart requests, in part-number order."""
        parts = [
            (int(r.query["partNumber"][0]), r.body_size)
            for r in self.requests
            if r.method == "PUT" and "partNumber" in r.query and r.status == 200
        ]
        return [size for _, size in sorted(parts)]

    def start(self) -> "StrictS3Proxy":
        proxy = self
        upstream = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                reason = proxy._violation(self.headers)
                if reason:
                    proxy.rejected.append(reason)
                    self._reply(400, b"<Error><Code>InvalidRequest</Code><Message>" + reason.encode() + b"</Message></Error>")
                    proxy.requests.append(Recorded(self.command, self.path, query, len(body), 400))
                    return
                fault = proxy._fault(self.command, query)
                if fault:
                    self._reply(fault, b"<Error><Code>InternalError</Code><Message>injected</Message></Error>")
                    proxy.requests.append(Recorded(self.command, self.path, query, len(body), fault))
                    return
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                proxy.requests.append(Recorded(self.command, self.path, query, len(body), response.status))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                # HEAD answers carry the object's length, not the (empty) body's
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _violation(self, headers) -> str | None:  # type: ignore[no-untyped-def]
        if not self.strict:
            return None
        for name in headers.keys():
            if name.lower().startswith(REJECTED_HEADER_PREFIXES):
                return f"unsupported header {name}"
        if "aws-chunked" in (headers.get("Content-Encoding") or "").lower():
            return "unsupported Content-Encoding aws-chunked"
        return None

    def _fault(self, method: str, query: dict[str, list[str]]) -> int | None:
        for fault in self.faults:
            if fault.method == method and (fault.query_key is None or fault.query_key in query):
                fault.seen += 1
                if fault.seen > fault.after and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault.status
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "StrictS3Proxy":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

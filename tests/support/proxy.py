"""A stoppable, byte-counting HTTP proxy on loopback, put in front of a remote registry.

Mirroring's fault tests need to cut a remote off in the middle of a transfer and to know,
afterwards, what was sent to it: the proxy forwards every request to its upstream (bodies
streamed both ways), records (method, path, request body bytes, status) per request, can
be stopped (listening socket closed, every open connection reset) and started again on the
same port, and can stop itself once a given number of request body bytes went through
(so a test cuts a big upload in its middle without sleeping or timing anything).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .ports import LOOPBACK, free_port

COPY_CHUNK = 64 * 1024
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
     "upgrade"}
)  # fmt: skip


@dataclass(frozen=True)
class Forwarded:
    method: str
    path: str  # with the query
    sent: int  # request body bytes passed to the upstream
    status: int  # 0 when the upstream never answered (cut off)


class _Cut(Exception):
    """The proxy was stopped while this request was in flight."""


class CountingProxy:
    """``with CountingProxy("http://127.0.0.1:5000") as proxy: use proxy.url``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or LOOPBACK
        self.upstream_port = parts.port or 80
        self.port = free_port()
        self.requests: list[Forwarded] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._cut_after: int | None = None
        self._body_bytes = 0
        self.cut = threading.Event()  # set when stopped by `stop_after`
        self._pause_after: int | None = None
        self.paused = threading.Event()  # set while `pause_after` holds the traffic
        self._released = threading.Event()
        self._released.set()

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def bytes_sent(self, method: str | None = None, path_part: str = "") -> int:
        """Request body bytes passed upstream, of the requests matching."""
        with self._lock:
            return sum(
                r.sent
                for r in self.requests
                if (method is None or r.method == method) and path_part in r.path
            )

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self._body_bytes = 0

    def stop_after(self, body_bytes: int) -> None:
        """Stop (as `stop`) once this many more request body bytes have gone through."""
        with self._lock:
            self._cut_after = self._body_bytes + body_bytes
            self.cut.clear()

    def pause_after(self, body_bytes: int) -> None:
        """Hold every request (no byte forwarded, no answer) once this many more request body
        bytes have gone through, until `release`; `paused` is set then."""
        with self._lock:
            self._pause_after = self._body_bytes + body_bytes
            self.paused.clear()

    def release(self) -> None:
        self.paused.clear()
        self._released.set()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CountingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._open.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._open.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy._forward(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and reset every open connection (a remote gone)."""
        self._released.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._open)
            self._open.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forwarding ------------------------------------------------------------------------

    def _count(self, n: int) -> None:
        with self._lock:
            if self._pause_after is not None and self._body_bytes + n >= self._pause_after:
                self._pause_after = None
                self._released.clear()
                self.paused.set()
            self._body_bytes += n
            over = self._cut_after is not None and self._body_bytes >= self._cut_after
            if over:
                self._cut_after = None
        if over:
            self.cut.set()
            threading.Thread(target=self.stop, daemon=True).start()
            raise _Cut
        self._released.wait()

    def _body(self, handler: BaseHTTPRequestHandler) -> tuple[list[bytes] | None, int]:
        """The request body as chunks (None: no body) - read whole per chunk of 64 KiB."""
        if handler.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    return chunks, sum(map(len, chunks))
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(handler.headers.get("content-length") or 0)
        return None, length

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        sent, status, recorded = 0, 0, False
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            chunks, length = self._body(handler)
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in handler.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            if length or method in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(length))
            upstream.endheaders()
            if chunks is not None:
                for chunk in chunks:
                    upstream.send(chunk)
                    sent += len(chunk)
                    self._count(len(chunk))
            else:
                left = length
                while left:
                    data = handler.rfile.read(min(COPY_CHUNK, left))
                    if not data:
                        raise _Cut
                    upstream.send(data)
                    sent += len(data)
                    left -= len(data)
                    self._count(len(data))
            answer = upstream.getresponse()
            status = answer.status
            # recorded before the client has its answer: a client that saw it finish sees
            # it counted
            self._record(Forwarded(method, path, sent, status))
            recorded = True
            handler.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    handler.send_header(name, value)
            if answer.getheader("content-length") is None and method != "HEAD":
                # the upstream answered chunked: send it unframed, ended by closing
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            if method != "HEAD":
                while data := answer.read(COPY_CHUNK):
                    handler.wfile.write(data)
            handler.wfile.flush()
        except (_Cut, OSError, http.client.HTTPException):
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
        finally:
            upstream.close()
            if not recorded:
                self._record(Forwarded(method, path, sent, status))

    def _record(self, forwarded: Forwarded) -> None:
        with self._lock:
            self.requests.append(forwarded)

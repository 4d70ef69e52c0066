"""Small loopback HTTP servers that misbehave like bad remote registries, for the OCI client's
tests: garbage bodies, a hang, 429 with Retry-After, and a blob upload endpoint that drops the
connection after N bytes of a PATCH (counting every body byte it received)."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultServer:
    """mode: garbage | hang | ratelimit | ratelimit-once (then upload) | upload.
    Counters: `body_bytes` (PATCH bytes kept),
    `requests` (method, path)."""

    def __init__(
        self,
        mode: str,
        *,
        retry_after: int = 300,
        cut_after: int | None = None,
        tls: tuple[str, str] | None = None,  # (certificate file, key file): serve HTTPS
    ) -> None:
        self.mode = mode
        self.retry_after = retry_after
        self.cut_after = cut_after  # upload: drop the connection once this many bytes are in
        self.uploads: dict[str, bytearray] = {}
        self.blobs: dict[str, bytes] = {}
        self.body_bytes = 0
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _any(self) -> None:
                with owner._lock:
                    owner.requests.append((self.command, self.path))
                owner.handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- behaviour -------------------------------------------------------------------------

    def handle(self, h: Any) -> None:
        if self.mode == "garbage":
            h._answer(200, b"<html>not a registry</html>", Content_Type="text/html")
        elif self.mode == "hang":
            self.release.wait()
            h.close_connection = True
        elif self.mode == "ratelimit" or (
            self.mode == "ratelimit-once" and len(self.requests) == 1
        ):
            h._answer(429, b"", Retry_After=str(self.retry_after))
        else:
            self._upload(h)

    def _upload(self, h: Any) -> None:
        path = h.path.split("?")[0]
        length = int(h.headers.get("Content-Length") or 0)
        if path == "/v2/":
            h._answer(200, b"{}")
        elif "/blobs/uploads/" in path and h.command == "POST":
            uid = str(len(self.uploads) + 1)
            self.uploads[uid] = bytearray()
            h.rfile.read(length)
            h._answer(202, Location=f"/v2/x/blobs/uploads/{uid}", Range="0-0")
        elif "/blobs/uploads/" in path:
            uid = path.rsplit("/", 1)[1]
            buf = self.uploads.get(uid)
            if buf is None:
                h.rfile.read(length)
                h._answer(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}')
            elif h.command == "GET":
                h._answer(204, Location=h.path, Range=f"0-{max(len(buf) - 1, 0)}")
            elif h.command == "PATCH":
                remaining = length
                while remaining:
                    room = None if self.cut_after is None else self.cut_after - self.body_bytes
                    n = min(remaining, 8192 if room is None else max(room, 0))
                    if n == 0:
                        self.cut_after = None  # once
                        h.close_connection = True
                        h.connection.close()
                        return
                    got = h.rfile.read(n)
                    buf.extend(got)
                    self.body_bytes += len(got)
                    remaining -= len(got)
                h._answer(202, Location=h.path, Range=f"0-{len(buf) - 1}")
            elif h.command == "PUT":
                import hashlib
                from urllib.parse import parse_qs, urlsplit

                digest = parse_qs(urlsplit(h.path).query)["digest"][0]
                h.rfile.read(length)
                if "sha256:" + hashlib.sha256(bytes(buf)).hexdigest() != digest:
                    h._answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                    return
                self.blobs[digest] = bytes(buf)
                h._answer(201, Location=f"/v2/x/blobs/{digest}")
            else:
                h._answer(405)
        elif "/blobs/" in path and h.command == "HEAD":
            digest = path.rsplit("/", 1)[1]
            if digest in self.blobs:
                h._answer(200, Content_Length_=str(len(self.blobs[digest])))
            else:
                h._answer(404)
        else:
            h._answer(404)

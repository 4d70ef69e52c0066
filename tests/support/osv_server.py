"""A loopback HTTP server of OSV bundles for the online update's tests (http.server in a
thread, 127.0.0.1 only): ETag and Last-Modified, 304 on a matching If-None-Match (or
If-Modified-Since without an ETag), 206 for a Range whose If-Range matches, an error status,
and a body cut off after some bytes (once). Every request's headers are kept."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Bundle:
    body: bytes
    etag: str | None = '"v1"'
    last_modified: str | None = None
    status: int = 200
    cut_after: int | None = None  # send this many bytes of the body, then close
    hold: threading.Event | None = None  # answer once it is set
    declare_length: bool = True  # False: no Content-Length, the body ends with the connection


@dataclass
class Served:
    bundles: dict[str, Bundle] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def asked(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [headers for p, headers in self.requests if p == path]


class Handler(BaseHTTPRequestHandler):
    served: Served
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.served.lock:
            self.served.requests.append((self.path, headers))
        bundle = self.served.bundles.get(self.path)
        if bundle is not None and bundle.hold is not None:
            bundle.hold.wait(timeout=120)
        if bundle is None or bundle.status != 200:
            self.send_response(bundle.status if bundle else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        validators = {"ETag": bundle.etag, "Last-Modified": bundle.last_modified}
        validators = {k: v for k, v in validators.items() if v}
        if (bundle.etag and headers.get("if-none-match") == bundle.etag) or (
            not bundle.etag
            and bundle.last_modified
            and headers.get("if-modified-since") == bundle.last_modified
        ):
            self.send_response(304)
            for k, v in validators.items():
                self.send_header(k, v)
            self.end_headers()
            return
        body, start = bundle.body, 0
        ranged = headers.get("range", "")
        if ranged.startswith("bytes=") and headers.get("if-range") in validators.values():
            start = int(ranged[6:].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if bundle.declare_length:
            self.send_header("Content-Length", str(len(body) - start))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for k, v in validators.items():
            self.send_header(k, v)
        self.end_headers()
        sent = body[start:]
        if bundle.cut_after is not None:
            self.wfile.write(sent[: bundle.cut_after])
            self.wfile.flush()
            self.close_connection = True
            bundle.cut_after = None  # once
            return
        self.wfile.write(sent)


@contextmanager
def serve_bundles() -> Iterator[tuple[str, Served]]:
    """The server's base URL and what it serves (fill `bundles` by path)."""
    served = Served()
    handler = type("H", (Handler,), {"served": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def zipped(entries: dict[str, bytes]) -> bytes:
    """A zip of OSV records, osv.dev's all.zip shape."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()

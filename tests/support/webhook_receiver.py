"""A real HTTP receiver for webhook tests: a threaded `http.server` on 127.0.0.1 that records
every request it answers, and can be told to fail the next N requests, to hold its answers
until released, or to serve TLS with a given certificate."""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the receiver answered
    arrival: int = 0  # the order in which the requests came in (records are kept in it)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["x-trustyard-event-id"]

    def signed_with(self, secret: str) -> bool:
        """Whether the signature header is the HMAC-SHA256 of the body under `secret`."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-trustyard-signature-256", ""), expected)


class WebhookReceiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []  # answered with 2xx or not, in arrival order
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._arrivals = 0
        self._fail_next = 0
        self._fail_after = 0
        self._fail_status = 500
        self._open = threading.Event()
        self._open.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                arrival = receiver._arrive()
                receiver._open.wait(timeout=120)
                status = receiver._answer_status()
                record = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    status,
                    arrival,
                )
                reply = b'{"received": true}' if status < 300 else b"planned failure"
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                receiver._record(record)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    # --- behaviour -------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 500, *, after: int = 0) -> None:
        """Answer `status` to `count` requests, once `after` more have been answered 200."""
        with self._lock:
            self._fail_next = count
            self._fail_after = after
            self._fail_status = status

    def hold(self) -> None:
        """Answer nothing (and record nothing) until `release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _answer_status(self) -> int:
        with self._lock:
            if self._fail_after > 0:
                self._fail_after -= 1
                return 200
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_status
            return 200

    def _arrive(self) -> int:
        with self._lock:
            self._arrivals += 1
            return self._arrivals

    def _record(self, record: Received) -> None:
        """Keep `record` in the order requests came in. It is recorded after its answer was
        written, so the next request (a sender waits for each answer) can be recorded first,
        by another thread: the arrival number puts them back in order."""
        with self._changed:
            bisect.insort(self.requests, record, key=lambda r: r.arrival)
            self._changed.notify_all()

    # --- reading ---------------------------------------------------------------------------
    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> list[Received]:
        """The requests answered with 2xx."""
        return [r for r in self.received(path) if r.status < 300]

    def wait_for(
        self,
        condition: Callable[[list[Received]], bool],
        timeout: float = 60.0,
        path: str | None = None,
    ) -> list[Received]:
        """Wait until `condition` holds for the requests (to `path`) answered with 2xx."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    r for r in self.requests if r.status < 300 and (path is None or r.path == path)
                ]
                if condition(found):
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (r.path, r.headers.get("x-trustyard-event"), r.status)
                        for r in self.requests
                    ]
                    raise AssertionError(f"webhook receiver: not met in {timeout} s; got {seen}")
                self._changed.wait(min(left, 0.5))

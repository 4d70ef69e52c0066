"""The sender against a real HTTP server on 127.0.0.1: one connection per POST (no keep-alive:
a receiver written on Python's http.server answers a kept-alive request only after TCP's
delayed acknowledgement, 40 ms, since it writes headers and body apart), the destination policy
checked before anything is sent, a dead destination answered as a network error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from trustyard.webhooks.destinations import DestinationPolicy
from trustyard.webhooks.sender import Sender

LOOPBACK = DestinationPolicy(["127.0.0.1/32"])


@dataclass
class Receiver:
    """Answers 200 to every POST (keeping the connection open, as HTTP/1.1 allows) and
    remembers the client port of each (one per TCP connection)."""

    ports: list[int] = field(default_factory=list)
    server: Any = None

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            state.ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server.daemon_threads = True
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()
    thread.join(timeout=10)


def test_single_sends_each_connect_afresh(receiver: Receiver) -> None:
    sender = Sender(LOOPBACK, timeout=5)
    assert [sender.send(receiver.url(), b"{}", {}).status for _ in range(3)] == [200] * 3
    assert len(set(receiver.ports)) == 3


def test_a_destination_the_policy_forbids_gets_nothing(receiver: Receiver) -> None:
    closed = DestinationPolicy([])  # loopback is not a global address: refused
    result = Sender(closed, timeout=5).send(receiver.url(), b"{}", {})
    assert result.refused
    assert result.status is None
    assert receiver.ports == []


def test_a_dead_destination_is_a_network_error_not_an_exception(receiver: Receiver) -> None:
    url = receiver.url()
    receiver.server.shutdown()
    receiver.server.server_close()
    result = Sender(LOOPBACK, timeout=5).send(url, b"{}", {})
    assert result.status is None
    assert result.error is not None
    assert "connecting to 127.0.0.1" in result.error

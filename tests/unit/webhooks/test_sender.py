"""The sender against real HTTP servers on 127.0.0.1: a session (one batch of deliveries)
keeps one connection per destination, replaces one the receiver closed, never reuses one whose
answer said it would close, and checks the destination policy like a single send."""

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
    """Answers 200 to every POST and remembers the client port of each (one per TCP
    connection). `close_after` > 0: close each connection after that many answers without
    saying so (as a receiver whose idle timeout ran out between two requests); `say_close`:
    answer `Connection: close`."""

    close_after: int = 0
    say_close: bool = False
    ports: list[int] = field(default_factory=list)
    server: Any = None

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        answered = 0

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            state.ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("content-length", "2")
            if state.say_close:
                self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(b"ok")
            self.answered += 1
            if state.close_after and self.answered >= state.close_after:
                self.close_connection = True

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


def test_a_session_sends_its_posts_over_one_connection(receiver: Receiver) -> None:
    with Sender(LOOPBACK, timeout=5).session() as session:
        results = [session.send(receiver.url(), b"{}", {}) for _ in range(5)]
    assert [r.status for r in results] == [200] * 5
    assert len(set(receiver.ports)) == 1


def test_single_sends_each_connect_afresh(receiver: Receiver) -> None:
    sender = Sender(LOOPBACK, timeout=5)
    assert [sender.send(receiver.url(), b"{}", {}).status for _ in range(3)] == [200] * 3
    assert len(set(receiver.ports)) == 3


def test_a_connection_the_receiver_closed_is_replaced_and_the_post_goes_out(
    receiver: Receiver,
) -> None:
    receiver.close_after = 2
    with Sender(LOOPBACK, timeout=5).session() as session:
        results = [session.send(receiver.url(), b"{}", {}) for _ in range(5)]
    assert [r.status for r in results] == [200] * 5
    assert len(receiver.ports) == 5  # each POST arrived once
    assert len(set(receiver.ports)) == 3  # two per connection, then a fresh one


def test_an_answer_that_says_close_is_never_reused(receiver: Receiver) -> None:
    receiver.say_close = True
    with Sender(LOOPBACK, timeout=5).session() as session:
        results = [session.send(receiver.url(), b"{}", {}) for _ in range(3)]
    assert [r.status for r in results] == [200] * 3
    assert len(set(receiver.ports)) == 3


def test_a_session_still_refuses_a_destination_the_policy_forbids(receiver: Receiver) -> None:
    closed = DestinationPolicy([])  # loopback is not a global address: refused
    with Sender(closed, timeout=5).session() as session:
        result = session.send(receiver.url(), b"{}", {})
    assert result.refused
    assert result.status is None
    assert receiver.ports == []


def test_a_dead_destination_is_a_network_error_not_an_exception(receiver: Receiver) -> None:
    url = receiver.url()
    receiver.server.shutdown()
    receiver.server.server_close()
    with Sender(LOOPBACK, timeout=5).session() as session:
        result = session.send(url, b"{}", {})
    assert result.status is None
    assert result.error is not None
    assert "connecting to 127.0.0.1" in result.error

"""One HTTP(S) POST to a webhook destination: checked against the SSRF policy, connected to
the checked address, never following a redirect, with a timeout, a custom CA bundle or no
verification as the subscription says, and the answer's status and first bytes kept."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from trustyard.errors import Invalid
from trustyard.webhooks.destinations import Destination, DestinationPolicy
from trustyard.webhooks.interfaces import DestinationRefused

EXCERPT_BYTES = 1024
USER_AGENT = "trustyard-webhooks/1"


@dataclass(frozen=True, slots=True)
class SendResult:
    status: int | None  # None: no HTTP answer
    latency_ms: int
    error: str | None
    excerpt: str | None
    refused: bool = False  # not attempted: the destination is not allowed

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is not None and not self.ok:
            return f"HTTP {self.status}"
        return self.error or ("ok" if self.ok else "failed")


def tls_context(ca_bundle: str | None, verify: bool) -> ssl.SSLContext:
    """The TLS settings of a subscription: the system's CAs, only `ca_bundle`'s (PEM), or no
    verification at all."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_bundle:
        try:
            return ssl.create_default_context(cadata=ca_bundle)
        except (ssl.SSLError, ValueError) as error:
            raise Invalid(f"ca_bundle holds no usable PEM certificate: {error}") from None
    return ssl.create_default_context()


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, whatever the host name resolves to by now."""

    def __init__(self, destination: Destination, address: str, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(
        self, destination: Destination, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        plain = socket.create_connection((self._address, self.port), self.timeout)
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._tls.wrap_socket(plain, server_hostname=self.host)


class Sender:
    def __init__(
        self, policy: DestinationPolicy, timeout: float = 10.0, excerpt_bytes: int = EXCERPT_BYTES
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.excerpt_bytes = excerpt_bytes

    def send(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        ca_bundle: str | None = None,
        tls_verify: bool = True,
    ) -> SendResult:
        """One POST on a connection of its own."""
        with self.session() as session:
            return session.send(url, body, headers, ca_bundle=ca_bundle, tls_verify=tls_verify)

    def session(self) -> Session:
        """Several POSTs (a batch of deliveries) that keep their connection between them."""
        return Session(self)


class Session:
    """POSTs that reuse one kept-alive connection per destination, each connected to the
    address the policy checked for that URL when the session first met it (a session is
    short: one batch of deliveries). A reused connection that the receiver has closed in
    the meantime is replaced once, at once. Close it (a `with` block) when done."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._open: dict[tuple[str, str | None, bool], _Open] = {}

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for held in self._open.values():
            held.connection.close()
        self._open.clear()

    def send(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        ca_bundle: str | None = None,
        tls_verify: bool = True,
    ) -> SendResult:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        key = (url, ca_bundle, tls_verify)
        sent = {"User-Agent": USER_AGENT, "Content-Length": str(len(body)), **headers}
        held = self._open.pop(key, None)
        if held is not None:
            result = self._post(held, body, sent, elapsed)
            if result is not None:
                return self._keep(key, held, result)
            held.connection.close()  # closed by the receiver meanwhile: connect afresh
        try:
            destination = self.sender.policy.check(url)
            context = tls_context(ca_bundle, tls_verify) if destination.https else None
        except DestinationRefused as refused:
            return SendResult(None, elapsed(), f"destination refused: {refused}", None, True)
        except Invalid as invalid:
            return SendResult(None, elapsed(), str(invalid), None)
        error = "no address to connect to"
        for address in destination.addresses:
            connection: http.client.HTTPConnection = (
                _PinnedHTTPS(destination, address, self.sender.timeout, context)
                if context is not None
                else _PinnedHTTP(destination, address, self.sender.timeout)
            )
            try:
                connection.connect()
            except (ssl.SSLError, ssl.CertificateError) as tls_error:
                connection.close()
                return SendResult(None, elapsed(), f"TLS: {tls_error}", None)
            except OSError as connect_error:
                connection.close()
                error = f"connecting to {address}: {_reason(connect_error)}"
                continue  # the next address, if any
            fresh = _Open(connection, destination.target)
            result = self._post(fresh, body, sent, elapsed, fresh=True)
            assert result is not None
            return self._keep(key, fresh, result)
        return SendResult(None, elapsed(), error, None)

    def _post(
        self,
        held: _Open,
        body: bytes,
        headers: Mapping[str, str],
        elapsed: Callable[[], int],
        *,
        fresh: bool = False,
    ) -> SendResult | None:
        """POST on `held`; None when a reused connection turned out closed before any answer
        (the caller connects afresh)."""
        try:
            held.connection.request("POST", held.target, body=body, headers=headers)
            answer = held.connection.getresponse()
            data = answer.read(self.sender.excerpt_bytes)
            held.reusable = not answer.will_close and answer.read(1) == b""
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as gone:
            if not fresh:
                return None
            held.reusable = False
            return SendResult(None, elapsed(), _reason(gone), None)
        except (OSError, http.client.HTTPException) as failure:
            held.reusable = False
            return SendResult(None, elapsed(), _reason(failure), None)
        excerpt = data.decode("utf-8", "replace") if data else None
        return SendResult(answer.status, elapsed(), None, excerpt)

    def _keep(
        self, key: tuple[str, str | None, bool], held: _Open, result: SendResult
    ) -> SendResult:
        if held.reusable:
            self._open[key] = held
        else:
            held.connection.close()
        return result


@dataclass(slots=True)
class _Open:
    connection: http.client.HTTPConnection
    target: str  # the request target (path and query) of the destination
    reusable: bool = False


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    text = str(error) or type(error).__name__
    return text[:500]

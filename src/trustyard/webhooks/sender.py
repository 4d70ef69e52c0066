"""One HTTP(S) POST to a webhook destination: checked against the SSRF policy, connected to
the checked address, never following a redirect, with a timeout, a custom CA bundle or no
verification as the subscription says, and the answer's status and first bytes kept."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Mapping
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
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            destination = self.policy.check(url)
            context = tls_context(ca_bundle, tls_verify) if destination.https else None
        except DestinationRefused as refused:
            return SendResult(None, elapsed(), f"destination refused: {refused}", None, True)
        except Invalid as invalid:
            return SendResult(None, elapsed(), str(invalid), None)
        sent = {"User-Agent": USER_AGENT, "Content-Length": str(len(body)), **headers}
        error = "no address to connect to"
        for address in destination.addresses:
            connection: http.client.HTTPConnection = (
                _PinnedHTTPS(destination, address, self.timeout, context)
                if context is not None
                else _PinnedHTTP(destination, address, self.timeout)
            )
            try:
                try:
                    connection.connect()
                except (ssl.SSLError, ssl.CertificateError) as tls_error:
                    return SendResult(None, elapsed(), f"TLS: {tls_error}", None)
                except OSError as connect_error:
                    error = f"connecting to {address}: {_reason(connect_error)}"
                    continue  # the next address, if any
                connection.request("POST", destination.target, body=body, headers=sent)
                answer = connection.getresponse()
                data = answer.read(self.excerpt_bytes)
                excerpt = data.decode("utf-8", "replace") if data else None
                return SendResult(answer.status, elapsed(), None, excerpt)
            except (OSError, http.client.HTTPException) as failure:
                return SendResult(None, elapsed(), _reason(failure), None)
            finally:
                connection.close()
        return SendResult(None, elapsed(), error, None)


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    text = str(error) or type(error).__name__
    return text[:500]

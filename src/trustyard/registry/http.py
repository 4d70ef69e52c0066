"""A thin request/response layer over raw ASGI, for the registry's hot paths."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from trustyard.errors import DomainError, SizeInvalid
from trustyard.kit.asgi import Receive, Scope, Send
from trustyard.registry.errors import OciError, error_body

Headers = list[tuple[bytes, bytes]]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A Host header trustyard may echo: a DNS name or IPv4 address, or a bracketed IPv6 address,
# and an optional port. Nothing else (quotes, commas, spaces, paths) is ever echoed.
_HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?")


class ClientGone(Exception):
    """The client disconnected or stopped sending before the body was complete."""


class BodyStalled(ClientGone):
    """The client sent nothing for the body timeout before the body was complete."""


@dataclass
class Request:
    scope: Scope
    receive: Receive
    body_timeout: float
    params: dict[str, str] = field(init=False)
    _headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        raw = self.scope.get("query_string", b"").decode("latin-1")
        self.params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        self._headers = {}
        for key, value in self.scope["headers"]:
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            self._headers[name] = (
                f"{self._headers[name]}, {text}" if name in self._headers else text
            )

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def address(self) -> str | None:
        """The client's IP address as the server saw it."""
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is None:
            return None
        if not value.isdigit():
            raise SizeInvalid("Content-Length is not a number")
        return int(value)

    def accept(self) -> list[str]:
        raw = self.header("accept") or ""
        return [part.split(";")[0].strip() for part in raw.split(",") if part.strip()]

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives; a stalled or vanished client raises ClientGone."""
        declared = self.content_length
        received = 0
        loop = asyncio.get_running_loop()
        try:
            # One timer for the whole body, armed only while waiting for the client.
            async with asyncio.timeout(None) as timer:
                while True:
                    timer.reschedule(loop.time() + self.body_timeout)
                    message = await self.receive()
                    timer.reschedule(None)
                    if message["type"] == "http.disconnect":
                        raise ClientGone("client disconnected")
                    data = message.get("body", b"")
                    if data:
                        received += len(data)
                        if declared is not None and received > declared:
                            raise SizeInvalid("body is longer than Content-Length")
                        yield data
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise BodyStalled("client stopped sending the body") from None
        if declared is not None and received != declared:
            raise ClientGone("body is shorter than Content-Length")

    async def read_body(self, limit: int, too_large: DomainError) -> bytes:
        declared = self.content_length
        if declared is not None and declared > limit:
            raise too_large
        parts: list[bytes] = []
        size = 0
        body = self.chunks()
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                await _drain(body)
                raise too_large
            parts.append(chunk)
        return b"".join(parts)


# What is still read of a body refused as too large before the answer goes out: a little, for
# a short while. Closing a connection with unread bytes (the chunked body's last chunk is often
# still in flight) makes the kernel reset it, and the client may then lose the 413 itself.
DRAIN_BYTES = 1 << 20
DRAIN_SECONDS = 1.0


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read and drop what is left of `body`, up to DRAIN_BYTES or DRAIN_SECONDS, whichever
    comes first; a client that stalls or leaves ends it too."""
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in body:
                dropped += len(chunk)
                if dropped > DRAIN_BYTES:
                    return
    except (TimeoutError, ClientGone, DomainError):
        return


def public_base(request: Request) -> str:
    """`scheme://host[:port]` of this server as the client addressed it, for URLs sent back in
    headers: the Host header when it is a plain host[:port] (a name of 253 characters at most),
    else the address the server listens on."""
    scheme = request.scope.get("scheme")
    if scheme not in ("http", "https"):
        scheme = "http"
    host = request.header("host")
    if host is None or len(host) > 259 or _HOST_RE.fullmatch(host) is None:
        server = request.scope.get("server")
        if not server or not server[0]:
            return f"{scheme}://localhost"
        address, port = str(server[0]), server[1]
        host = f"[{address}]" if ":" in address else address
        if port is not None:
            host = f"{host}:{int(port)}"
    return f"{scheme}://{host}"


def header_list(pairs: Iterable[tuple[str, str]]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def respond(
    send: Send, status: int, headers: Headers, body: bytes = b"", head: bool = False
) -> None:
    all_headers = [*headers]
    if not any(k == b"content-length" for k, _ in headers):
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


JSON = (b"content-type", b"application/json")
API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")


async def respond_error(send: Send, error: OciError, extra: Headers | None = None) -> None:
    body = error_body([error])
    headers = [JSON, API_VERSION, *(extra or [])]
    await respond(send, error.status, headers, body)

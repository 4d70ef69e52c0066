"""Where webhooks may be sent (SSRF protection).

A destination is an http(s) URL whose host resolves only to global addresses, or to addresses
inside the networks an administrator allow-lists (`webhooks.allowed_networks`). Loopback,
link-local (cloud metadata services live there), private, shared, documentation, multicast and
other non-global addresses are refused. The check runs when a subscription is created or its
URL changes, and again before every delivery (DNS answers change); the delivery then connects
to the very address that was checked, so a second DNS answer cannot slip in between.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from trustyard.webhooks.interfaces import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
MAX_URL = 2048


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for TCP, in the resolver's order, once each."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True, slots=True)
class Destination:
    url: str
    https: bool
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]  # checked addresses, to connect to in this order


def parse_url(url: str) -> SplitResult:
    """The URL split, if it is one webhooks can use (before any DNS)."""
    if len(url) > MAX_URL or any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise DestinationRefused("a webhook URL has at most 2048 characters and no spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise DestinationRefused(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("a webhook URL starts with http:// or https://")
    if not parts.hostname:
        raise DestinationRefused("a webhook URL names a host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("a webhook URL carries no credentials (the signature says who)")
    if parts.fragment:
        raise DestinationRefused("a webhook URL has no #fragment")
    if port == 0:
        raise DestinationRefused("port 0 is no destination")
    return parts


class DestinationPolicy:
    def __init__(self, allowed_networks: Sequence[str] = (), resolver: Resolver = resolve):
        self.allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in allowed_networks
        )
        self.resolver = resolver

    def permits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if any(address in network for network in self.allowed):
            return True
        return address.is_global and not address.is_multicast

    def check(self, url: str) -> Destination:
        """The destination of `url`, resolved now; `DestinationRefused` says why not."""
        parts = parse_url(url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise DestinationRefused(f"cannot resolve {host!r}: {error}") from None
        if not addresses:
            raise DestinationRefused(f"{host!r} resolves to no address")
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise DestinationRefused(f"{host!r} resolves to {text!r}") from None
            if not self.permits(address):
                raise DestinationRefused(
                    f"{host!r} resolves to {address}, a non-global address that webhooks may not "
                    "reach (an administrator may allow its network: webhooks.allowed_networks)"
                )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return Destination(url, https, host, port, target, tuple(addresses))

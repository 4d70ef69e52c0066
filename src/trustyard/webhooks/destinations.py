"""Where webhooks may be sent (SSRF protection).

A destination is an http(s) URL whose host resolves only to global addresses, or to addresses
inside the networks an administrator allow-lists (`webhooks.allowed_networks`). Loopback,
link-local (cloud metadata services live there), private, shared, documentation, multicast,
IPv6 site-local and other non-global addresses are refused, and so is every IPv6 address that
embeds a refused IPv4 address: IPv4-mapped, -compatible and -translated addresses stand for
their IPv4 address; NAT64, 6to4 and Teredo addresses reach theirs through a relay. An allowed
IPv4 network opens its IPv4-mapped form (the system connects to it over IPv4), not the others.
The check runs when a subscription is created or its URL changes, and again before every
delivery (DNS answers change); the delivery then connects to the very address that was checked,
so a second DNS answer cannot slip in between.
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

SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
# IPv6 forms that are an IPv4 address (in their last 32 bits)
STANDS_FOR_IPV4 = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the IPv4 address in the last 32 bits
# Local-use NAT64 prefixes may place the IPv4 address anywhere (RFC 6052): never global.
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # the IPv4 address in bits 16-47
TEREDO = ipaddress.IPv6Network("2001::/32")  # server in bits 32-63, client inverted in the last 32


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


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4,
    Teredo), none if it is of no such form."""
    value = int(address)
    if address in NAT64 or any(address in form for form in STANDS_FOR_IPV4):
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if address in SIX_TO_FOUR:
        return (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if address in TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        return (server, ipaddress.IPv4Address(~value & 0xFFFFFFFF))
    return ()


def _is_global(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast


class DestinationPolicy:
    def __init__(self, allowed_networks: Sequence[str] = (), resolver: Resolver = resolve):
        self.allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in allowed_networks
        )
        self.resolver = resolver

    def permits(self, address: IPAddress) -> bool:
        if any(address in network for network in self.allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return self.permits(address.ipv4_mapped)  # ::ffff:10.0.0.1 is 10.0.0.1
            if address in SITE_LOCAL or address in NAT64_LOCAL:
                return False
            # The other forms reach their IPv4 address over IPv6 (or through a relay): allowing
            # an IPv4 network does not open them, allowing their IPv6 prefix does.
            if not all(_is_global(ipv4) for ipv4 in embedded_ipv4(address)):
                return False
        return _is_global(address)

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

"""The client's address behind trusted reverse proxies (`X-Forwarded-For`).

Each proxy appends the address it received the request from, so the list is read from the
right: entries added by trusted proxies are skipped, and the first address that is not a
trusted proxy is the client. Everything to its left was written by the client itself and is
never believed. A peer that is not a trusted proxy is the client, whatever the header says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client's address: `peer` unless it is a trusted proxy with an X-Forwarded-For
    (every such header joined with commas, in order)."""
    if peer is None or not forwarded_for or not _trusted(peer, trusted):
        return peer
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        text = entry.strip()
        if text.startswith("[") and "]" in text:  # "[v6]" or "[v6]:port"
            text = text[1 : text.index("]")]
        elif text.count(":") == 1:  # "v4:port"
            text = text.partition(":")[0]
        try:
            text = str(ipaddress.ip_address(text))
        except ValueError:
            return client  # garbage: the last address a trusted hop vouched for
        client = text
        if not _trusted(text, trusted):
            return client
    return client

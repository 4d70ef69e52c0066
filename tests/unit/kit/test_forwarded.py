"""The client behind trusted proxies: X-Forwarded-For is believed only as far as trusted hops
wrote it (issue 9, item 15: a client must not choose the address its failures count on)."""

from __future__ import annotations

import pytest

from trustyard.kit.forwarded import client_address, networks

PROXIES = networks(["10.0.0.0/8", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("198.51.100.7", "203.0.113.1", "198.51.100.7"),
        ("198.51.100.7", None, "198.51.100.7"),
        # A trusted proxy: the rightmost address that is not one of ours.
        ("10.0.0.2", "203.0.113.1", "203.0.113.1"),
        ("10.0.0.2", "1.2.3.4, 203.0.113.1", "203.0.113.1"),  # 1.2.3.4: the client's own claim
        ("10.0.0.2", "203.0.113.1, 10.0.0.3", "203.0.113.1"),  # through two of our proxies
        ("10.0.0.2", "[2001:db9::5]:4711", "2001:db9::5"),
        ("10.0.0.2", "203.0.113.1:4711", "203.0.113.1"),
        ("2001:db8::1", "203.0.113.1", "203.0.113.1"),
        ("::ffff:10.0.0.2", "203.0.113.1", "203.0.113.1"),  # v4-mapped peer
        # Garbage stops the walk at the last hop a trusted proxy vouched for.
        ("10.0.0.2", "203.0.113.1, nonsense", "10.0.0.2"),
        ("10.0.0.2", "nonsense, 203.0.113.1", "203.0.113.1"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
        # Every hop is ours: the leftmost.
        ("10.0.0.2", "10.1.1.1, 10.0.0.3", "10.1.1.1"),
        (None, "203.0.113.1", None),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str | None, header: str | None, expected: str | None
) -> None:
    assert client_address(peer, header, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", "203.0.113.1", networks([])) == "127.0.0.1"

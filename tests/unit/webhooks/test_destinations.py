"""The SSRF policy: which addresses webhooks may reach, and which URLs they accept."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.webhooks.destinations import DestinationPolicy, parse_url
from trustyard.webhooks.interfaces import DestinationRefused


def resolving(*addresses: str) -> DestinationPolicy:
    return DestinationPolicy(resolver=lambda host, port: list(addresses))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "10.20.30.40",  # private
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # link-local: cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "192.0.2.10",  # documentation
        "224.0.0.1",  # multicast
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",  # unique local
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::",
    ],
)
def test_non_global_addresses_are_refused(address: str) -> None:
    with pytest.raises(DestinationRefused, match="non-global address"):
        resolving(address).check("http://hooks.example/x")


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_global_addresses_pass(address: str) -> None:
    destination = resolving(address).check("https://hooks.example:8443/in?x=1")
    assert destination.https is True
    assert destination.host == "hooks.example"
    assert destination.port == 8443
    assert destination.target == "/in?x=1"
    assert destination.addresses == (address,)


def test_one_bad_address_among_good_ones_refuses_the_name() -> None:
    with pytest.raises(DestinationRefused, match=r"10\.0\.0\.1"):
        resolving("93.184.216.34", "10.0.0.1").check("http://rebinding.example/")


def test_allowed_networks_open_exactly_themselves() -> None:
    policy = DestinationPolicy(["127.0.0.1/32", "10.1.0.0/16"], resolver=lambda h, p: [h])
    for allowed in ("127.0.0.1", "10.1.255.3", "::ffff:10.1.0.9"):
        assert policy.check(f"http://[{allowed}]/" if ":" in allowed else f"http://{allowed}/")
    for refused in ("127.0.0.2", "10.2.0.1"):
        with pytest.raises(DestinationRefused):
            policy.check(f"http://{refused}/")


@given(st.integers(min_value=0, max_value=2**24 - 1))
def test_every_address_of_10_slash_8_is_refused_unless_allowed(offset: int) -> None:
    address = str(ipaddress.IPv4Address("10.0.0.0") + offset)
    with pytest.raises(DestinationRefused):
        DestinationPolicy(resolver=lambda h, p: [address]).check("http://x.example/")
    allowed = DestinationPolicy(["10.0.0.0/8"], resolver=lambda h, p: [address])
    assert allowed.check("http://x.example/").addresses == (address,)


def test_default_ports_and_path() -> None:
    policy = resolving("93.184.216.34")
    assert policy.check("http://a.example").port == 80
    assert policy.check("http://a.example").target == "/"
    assert policy.check("https://a.example").port == 443


def test_an_unresolvable_name_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(DestinationRefused, match=r"cannot resolve 'gone\.example'"):
        DestinationPolicy(resolver=fails).check("http://gone.example/")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://a.example/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://", "names a host"),
        ("http://user:pw@a.example/", "no credentials"),
        ("http://a.example/#frag", "no #fragment"),
        ("http://a.example/a b", "no spaces"),
        ("http://a.example:0/", "port 0"),
        ("http://a.example:99999/", "not a valid URL"),
        ("http://a.example/" + "x" * 2100, "at most 2048"),
    ],
)
def test_malformed_urls_are_refused_before_any_lookup(url: str, words: str) -> None:
    with pytest.raises(DestinationRefused, match=words):
        parse_url(url)

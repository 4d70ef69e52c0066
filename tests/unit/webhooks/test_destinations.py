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


def _in_form(form: str, ipv4: ipaddress.IPv4Address, other: ipaddress.IPv4Address) -> str:
    """`ipv4` carried by an IPv6 address of `form` (`other` fills Teredo's second IPv4 slot)."""
    value = int(ipv4)
    if form == "mapped":
        return str(ipaddress.IPv6Address((0xFFFF << 32) | value))
    if form == "compatible":
        return str(ipaddress.IPv6Address(value))
    if form == "translated":
        return str(ipaddress.IPv6Address((0xFFFF << 48) | value))
    if form == "nat64":
        return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | value))
    if form == "6to4":
        return str(ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1))
    prefix = int(ipaddress.IPv6Address("2001::"))
    if form == "teredo-server":
        return str(ipaddress.IPv6Address(prefix | (value << 64) | (~int(other) & 0xFFFFFFFF)))
    assert form == "teredo-client"
    return str(ipaddress.IPv6Address(prefix | (int(other) << 64) | (~value & 0xFFFFFFFF)))


FORMS = ["mapped", "compatible", "translated", "nat64", "6to4", "teredo-server", "teredo-client"]
FORM_PREFIXES = {
    "mapped": "::ffff:0:0/96",
    "compatible": "::/96",
    "translated": "::ffff:0:0:0/96",
    "nat64": "64:ff9b::/96",
    "6to4": "2002::/16",
    "teredo-server": "2001::/32",
    "teredo-client": "2001::/32",
}
NON_GLOBAL_IPV4 = st.ip_addresses(v=4).filter(lambda a: not a.is_global or a.is_multicast)
GLOBAL_IPV4 = st.ip_addresses(v=4).filter(lambda a: a.is_global and not a.is_multicast)


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible loopback
        "::ffff:0:7f00:1",  # IPv4-translated loopback
        "64:ff9b::7f00:1",  # NAT64 of loopback
        "64:ff9b:1::808:808",  # local-use NAT64: never global
        "2002:7f00:1::1",  # 6to4 of loopback
        "::a9fe:a9fe",  # IPv4-compatible cloud metadata
        "2001:0:a9fe:a9fe::1",  # Teredo server 169.254.169.254
        "fec0::1",  # site-local
        "fed0::1",
    ],
)
def test_ipv6_forms_of_non_global_addresses_are_refused(address: str) -> None:
    with pytest.raises(DestinationRefused, match="non-global address"):
        resolving(address).check("http://hooks.example/x")


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"])
def test_ipv6_forms_of_global_addresses_pass(address: str) -> None:
    assert resolving(address).check("http://hooks.example/").addresses == (address,)


@given(st.sampled_from(FORMS), NON_GLOBAL_IPV4, GLOBAL_IPV4)
def test_an_embedded_non_global_ipv4_is_refused_in_every_form(
    form: str, ipv4: ipaddress.IPv4Address, other: ipaddress.IPv4Address
) -> None:
    address = _in_form(form, ipv4, other)
    with pytest.raises(DestinationRefused, match="non-global address"):
        resolving(address).check("http://x.example/")
    # an administrator opens the IPv4 network, or the whole IPv6 form
    by_prefix = DestinationPolicy([FORM_PREFIXES[form]], resolver=lambda h, p: [address])
    assert by_prefix.check("http://x.example/").addresses == (address,)
    by_ipv4 = DestinationPolicy([f"{ipv4}/32"], resolver=lambda h, p: [address])
    if form == "mapped":  # the system connects to ::ffff:a.b.c.d as a.b.c.d
        assert by_ipv4.check("http://x.example/").addresses == (address,)
    else:  # reached over IPv6 or through a relay, not as the allowed IPv4 address
        with pytest.raises(DestinationRefused, match="non-global address"):
            by_ipv4.check("http://x.example/")

"""`public_base`: the base URL trustyard writes into headers (the token realm) from a request."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.kit.asgi import Scope
from trustyard.registry.http import Request, public_base

PROPERTY = settings(derandomize=True, max_examples=500, deadline=None, database=None)
# What may follow `scheme://` in a realm: host characters and a port, never a quote, a comma,
# a space, a slash or an `@`.
SAFE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


async def _never(*_: object) -> dict[str, object]:
    raise AssertionError("no body is read")


def request(
    host: str | None, server: tuple[str, int | None] | None = ("127.0.0.1", 5000)
) -> Request:
    headers = [] if host is None else [(b"host", host.encode("latin-1"))]
    scope: Scope = {"type": "http", "method": "GET", "headers": headers, "scheme": "http"}
    if server is not None:
        scope["server"] = server
    return Request(scope, _never, 1.0)


@pytest.mark.parametrize(
    "host",
    ["registry.example.com", "registry.example.com:5000", "127.0.0.1:5000", "[::1]:443", "a"],
)
def test_a_plain_host_is_kept(host: str) -> None:
    assert public_base(request(host)) == f"http://{host}"


@pytest.mark.parametrize(
    "host",
    [
        'evil.com",error="x',
        "evil.com, other.com",
        "evil.com/path",
        "user@evil.com",
        "evil.com:port",
        "evil.com:123456",
        "-evil.com",
        "evil..com",
        "[::1",
        "",
        "a" * 300,
    ],
)
def test_anything_else_falls_back_to_the_listening_address(host: str) -> None:
    assert public_base(request(host)) == "http://127.0.0.1:5000"


def test_fallbacks_without_a_host_header() -> None:
    assert public_base(request(None)) == "http://127.0.0.1:5000"
    assert public_base(request(None, ("::1", 5000))) == "http://[::1]:5000"
    assert public_base(request(None, ("127.0.0.1", None))) == "http://127.0.0.1"
    assert public_base(request(None, None)) == "http://localhost"


@PROPERTY
@given(host=st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80))
def test_any_host_header_gives_a_safe_base(host: str) -> None:
    base = public_base(request(host))
    assert SAFE.fullmatch(base), base
    assert base in (f"http://{host}", "http://127.0.0.1:5000")

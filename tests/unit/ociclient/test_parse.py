"""Header parsing of the OCI client: WWW-Authenticate, Link, Range."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trustyard.ociclient._parse import parse_challenge, parse_link_next, parse_range_end

_VALUE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


def test_bearer_challenge_of_the_docker_token_flow() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",'
        'scope="repository:a/b:pull,push"'
    )
    assert c is not None
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "registry",
        "scope": "repository:a/b:pull,push",
    }


@given(realm=_VALUE, service=_VALUE)
def test_quoted_values_round_trip(realm: str, service: str) -> None:
    def q(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    c = parse_challenge(f'Bearer realm="{q(realm)}", service="{q(service)}"')
    assert c is not None
    assert c.params["realm"] == realm
    assert c.params["service"] == service


@given(st.text(max_size=200))
def test_any_header_parses_or_is_none(text: str) -> None:
    parse_challenge(text)
    parse_link_next(text)
    parse_range_end(text)


def test_link_next() -> None:
    assert (
        parse_link_next('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    )
    assert parse_link_next('</x>; rel="prev"') is None
    assert parse_link_next(None) is None


@given(st.integers(min_value=1, max_value=2**62))
def test_range_end(last: int) -> None:
    assert parse_range_end(f"0-{last}") == last + 1
    assert parse_range_end(f"bytes=0-{last}") == last + 1


def test_range_malformed_and_empty() -> None:
    assert parse_range_end("0-0") == 0
    assert parse_range_end("5-9") is None
    assert parse_range_end("garbage") is None
    assert parse_range_end(None) is None

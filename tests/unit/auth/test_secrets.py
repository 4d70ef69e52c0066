"""Access-token texts: the format users see once, and what the server stores and compares."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.auth.passwords import check_password_policy
from trustyard.auth.secrets import (
    PASSWORD_ALPHABET,
    ParsedToken,
    generate_password,
    hash_secret,
    new_token,
    parse_token,
    secret_matches,
)

TOKEN_RE = re.compile(r"ty_(pat|rbt)_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


@pytest.mark.parametrize("kind", ["pat", "rbt"])
def test_new_token_format_and_stored_hash(kind: str) -> None:
    text, public_id, secret_hash = new_token(kind)  # type: ignore[arg-type]
    assert TOKEN_RE.fullmatch(text)
    assert text.startswith(f"ty_{kind}_{public_id}_")
    secret = text[len(f"ty_{kind}_{public_id}_") :]
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert parse_token(text) == ParsedToken(kind, public_id, secret)  # type: ignore[arg-type]
    assert secret_matches(secret, secret_hash)


def test_tokens_are_unique() -> None:
    made = [new_token("pat") for _ in range(200)]
    assert len({t.text for t in made}) == len({t.public_id for t in made}) == 200


def test_reprs_never_show_the_secret() -> None:
    token = new_token("rbt")
    parsed = parse_token(token.text)
    assert parsed is not None
    assert parsed.secret not in repr(token)
    assert parsed.secret not in repr(parsed)
    assert token.public_id in repr(token)


def test_a_different_secret_does_not_match() -> None:
    token = new_token("pat")
    parsed = parse_token(token.text)
    assert parsed is not None
    flipped = ("B" if parsed.secret[0] == "A" else "A") + parsed.secret[1:]
    assert not secret_matches(flipped, token.secret_hash)
    assert not secret_matches("", token.secret_hash)
    assert not secret_matches(parsed.secret, token.secret_hash.upper())
    assert not secret_matches(parsed.secret, "é\ud800")
    assert not secret_matches("\ud800", token.secret_hash)


def test_hash_secret_is_sha256_hex() -> None:
    assert hash_secret("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


GOOD = "ty_pat_abcdefghij23_" + base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hunter2 hunter2",
        GOOD.replace("ty_", "tx_"),
        GOOD.replace("_pat_", "_xyz_"),
        GOOD.replace("_pat_", "_PAT_"),
        GOOD.replace("abcdefghij23", "abcdefghij2"),
        GOOD.replace("abcdefghij23", "ABCDEFGHIJ23"),
        GOOD.replace("abcdefghij23", "abcdefghij01"),
        GOOD[:-1],
        GOOD + "A",
        GOOD + "\n",
        " " + GOOD,
        GOOD[:-1] + "9",  # 9 sets bits below the 256th: not a canonical encoding
        GOOD[:-1] + "=",
    ],
)
def test_malformed_tokens_do_not_parse(text: str) -> None:
    assert parse_token(text) is None


def test_the_well_formed_example_parses() -> None:
    parsed = parse_token(GOOD)
    assert parsed is not None
    assert (parsed.kind, parsed.public_id) == ("pat", "abcdefghij23")


@given(st.text(max_size=90))
def test_parse_token_never_raises_and_reassembles(text: str) -> None:
    parsed = parse_token(text)
    if parsed is not None:
        assert f"ty_{parsed.kind}_{parsed.public_id}_{parsed.secret}" == text


@given(st.text(alphabet="ty_patrb2a-zA9Z", min_size=60, max_size=70))
def test_parse_token_near_misses(text: str) -> None:
    parsed = parse_token(text)
    if parsed is not None:
        assert TOKEN_RE.fullmatch(text)


def test_unknown_kind_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="token kind"):
        new_token("key")  # type: ignore[arg-type]


def test_generated_password_is_readable_and_acceptable() -> None:
    password = generate_password()
    assert len(password) == 24
    assert set(password) <= set(PASSWORD_ALPHABET)
    assert not set(PASSWORD_ALPHABET) & set("0O1lI")
    check_password_policy(password, username="admin")
    assert len({generate_password() for _ in range(50)}) == 50

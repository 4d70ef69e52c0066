"""Secrets sealed at rest and the signature receivers check."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.webhooks.interfaces import SecretUnreadable
from trustyard.webhooks.signing import SecretBox, generate_secret, signature


def test_a_sealed_secret_opens_only_with_its_passphrase() -> None:
    box = SecretBox("the registry's passphrase")
    sealed = box.seal("whsec_known")
    assert "whsec_known" not in sealed
    assert sealed.startswith("v1.")
    assert box.seal("whsec_known") != sealed  # a fresh nonce each time
    assert SecretBox(lambda: "the registry's passphrase").open(sealed) == "whsec_known"
    with pytest.raises(SecretUnreadable, match="signing_passphrase"):
        SecretBox("another passphrase").open(sealed)
    with pytest.raises(SecretUnreadable):
        box.open(sealed[:-4] + "AAAA")
    with pytest.raises(SecretUnreadable):
        box.open("plain text")


def test_the_passphrase_is_read_when_first_needed() -> None:
    calls: list[int] = []

    def passphrase() -> str:
        calls.append(1)
        return "lazy"

    box = SecretBox(passphrase)
    assert calls == []
    box.open(box.seal("x" * 20))
    assert calls == [1]


def test_generated_secrets_are_long_and_distinct() -> None:
    made = {generate_secret() for _ in range(50)}
    assert len(made) == 50
    assert all(secret.startswith("whsec_") and len(secret) >= 40 for secret in made)


@given(st.text(min_size=1, max_size=64), st.binary(max_size=512))
def test_the_signature_is_hmac_sha256_of_the_body(secret: str, body: bytes) -> None:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert signature(secret, body) == f"sha256={expected}"


def test_a_known_signature() -> None:
    assert signature("key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )

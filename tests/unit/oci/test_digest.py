"""Digests: the OCI descriptor grammar, the registered algorithms, and hashing."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.errors import DomainError
from trustyard.oci.digest import Digest, digest_bytes, new_hasher, parse_digest
from trustyard.registry.errors import ErrorCode, OciError, oci_error

PROPERTY = settings(derandomize=True, max_examples=100, deadline=None, database=None)

# Written from the OCI image spec (descriptor.md, "Digests"):
#   digest ::= algorithm ":" encoded
#   algorithm ::= algorithm-component (algorithm-separator algorithm-component)*
#   algorithm-component ::= [a-z0-9]+
#   algorithm-separator ::= [+._-]
#   encoded ::= [a-zA-Z0-9=_-]+
GRAMMAR = r"[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
# Registered algorithms: the encoded part is lower-case hex of the hash's length.
REGISTERED = {"sha256": 64, "sha512": 128}

SUPPORTED = st.sampled_from(sorted(REGISTERED))


def matches_grammar(text: str) -> bool:
    return re.fullmatch(GRAMMAR, text, flags=re.ASCII) is not None


def acceptable(text: str) -> bool:
    """What a registry supporting exactly sha256 and sha512 must accept."""
    if not matches_grammar(text):
        return False
    algorithm, encoded = text.split(":", 1)
    length = REGISTERED.get(algorithm)
    return length is not None and re.fullmatch(f"[a-f0-9]{{{length}}}", encoded) is not None


def invalid(text: str) -> OciError:
    with pytest.raises(DomainError) as caught:
        parse_digest(text)
    error = oci_error(caught.value)
    assert error.code is ErrorCode.DIGEST_INVALID
    assert error.status == 400
    return error


@PROPERTY
@given(data=st.binary(max_size=512), algorithm=SUPPORTED)
def test_digest_of_bytes_round_trips_through_its_string(data: bytes, algorithm: str) -> None:
    digest = digest_bytes(data, algorithm)
    assert str(digest) == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert parse_digest(str(digest)) == digest


@PROPERTY
@given(
    algorithm=SUPPORTED,
    chunks=st.lists(st.binary(max_size=64), max_size=8),
)
def test_streaming_hasher_matches_one_shot_digest(algorithm: str, chunks: list[bytes]) -> None:
    hasher = new_hasher(algorithm)
    for chunk in chunks:
        hasher.update(chunk)
    expected = digest_bytes(b"".join(chunks), algorithm)
    assert hasher.hexdigest() == expected.hex
    assert Digest(algorithm, hasher.hexdigest()) == expected


def _near_misses() -> st.SearchStrategy[str]:
    """Valid digests with one character inserted, replaced or removed."""

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        algorithm = draw(SUPPORTED)
        data = draw(st.binary(max_size=16))
        text = str(digest_bytes(data, algorithm))
        position = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(list("aAfFgG0:9-_.+=/ \n\t\x00é")))
        how = draw(st.sampled_from(["insert", "replace", "remove"]))
        if how == "insert":
            return text[:position] + char + text[position:]
        if how == "replace":
            return text[:position] + char + text[position + 1 :]
        return text[:position] + text[position + 1 :]

    return mutate()


@PROPERTY
@given(
    text=st.one_of(
        st.text(max_size=140),
        st.from_regex(GRAMMAR, fullmatch=True),
        _near_misses(),
    )
)
def test_parse_accepts_exactly_the_registered_shapes(text: str) -> None:
    if acceptable(text):
        digest = parse_digest(text)
        assert str(digest) == text
        assert (digest.algorithm, digest.hex) == tuple(text.split(":", 1))
    else:
        invalid(text)


@PROPERTY
@given(
    text=st.from_regex(GRAMMAR, fullmatch=True).filter(
        lambda t: t.split(":", 1)[0] not in REGISTERED
    )
)
def test_grammatical_digest_with_unsupported_algorithm_is_refused(text: str) -> None:
    error = invalid(text)
    assert "unsupported digest algorithm" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "md5:" + "a" * 32,
        "sha384:" + "a" * 96,
        "sha1:" + "a" * 40,
        "blake3:" + "a" * 64,
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
    ],
)
def test_well_formed_but_unregistered_algorithms_are_refused(text: str) -> None:
    error = invalid(text)
    assert "supported: sha256, sha512" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "A" * 64,  # registered algorithms use lower-case hex only
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "a" * 128,
        "sha512:" + "a" * 64,
        "SHA256:" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 64 + "\n",  # `$` would let a trailing newline through
        "sha256:" + "a" * 63 + "\n",
        " sha256:" + "a" * 64,
        "sha256 :" + "a" * 64,
        "sha256::" + "a" * 64,
        "sha256:" + "a" * 64 + ":",
        "sha256:" + "a" * 32 + "/" + "a" * 31,
        "sha256:../../" + "a" * 58,
    ],
)
def test_malformed_digests_are_digest_invalid(text: str) -> None:
    invalid(text)


def test_absurdly_long_input_is_refused_with_a_short_message() -> None:
    error = invalid("sha256:" + "a" * 10_000)
    assert len(error.message) < 200


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", ""])
def test_hasher_for_unsupported_algorithm_is_digest_invalid(algorithm: str) -> None:
    with pytest.raises(DomainError) as caught:
        new_hasher(algorithm)
    assert oci_error(caught.value).code is ErrorCode.DIGEST_INVALID


def test_known_digest_of_empty_content() -> None:
    assert (
        str(digest_bytes(b""))
        == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert digest_bytes(b"", "sha512").hex.startswith("cf83e1357eefb8bd")

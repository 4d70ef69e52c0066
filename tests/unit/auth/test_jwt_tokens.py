"""Registry bearer tokens: ES256 JWTs that only this signer, issuer and audience accept."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.auth.authorize import Action
from trustyard.auth.interfaces import AccessError
from trustyard.auth.jwt_tokens import (
    InvalidToken,
    SigningKeyError,
    TokenSigner,
    VerifiedToken,
    key_id,
)
from trustyard.auth.scopes import ScopeGrant

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
TTL = timedelta(minutes=5)
SERVICE = "registry.example"
ACCESS = [
    ScopeGrant("repository", "acme/app", ("pull", "push")),
    ScopeGrant("repository", "acme/base", ()),
    ScopeGrant("registry", "catalog", ("*",)),
]


JUNK_SIGNER = TokenSigner.generate()  # hypothesis tests cannot take function fixtures


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner.generate(issuer="trustyard-test")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64json(value: object) -> str:
    return b64(json.dumps(value).encode())


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "trustyard-test",
        "sub": "alice",
        "aud": SERVICE,
        "exp": int(NOW.timestamp()) + 300,
        "nbf": int(NOW.timestamp()),
        "iat": int(NOW.timestamp()),
        "jti": "id-1",
        "access": [],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def private_key(signer: TokenSigner) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(signer.private_pem(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def sign(signer: TokenSigner, payload: dict[str, Any], **headers: Any) -> str:
    """A token signed with the signer's own key: only its claims can be wrong."""
    return jwt.encode(
        payload, private_key(signer), algorithm="ES256", headers={"kid": signer.kid, **headers}
    )


def test_round_trip(signer: TokenSigner) -> None:
    token = signer.issue("alice", SERVICE, ACCESS, TTL, now=NOW)
    verified = signer.verify(token, SERVICE, now=NOW + timedelta(minutes=4))
    assert verified.subject == "alice"
    assert verified.access == tuple(ACCESS)
    assert verified.expires_at == NOW + TTL
    assert verified.scope.allows(Action.PUSH, "acme/app")
    assert not verified.scope.allows(Action.PULL, "acme/base")
    assert verified.scope.allows(Action.CATALOG)
    again = signer.verify(signer.issue("alice", SERVICE, ACCESS, TTL, now=NOW), SERVICE, now=NOW)
    assert again.token_id != verified.token_id


def test_claims_and_header_follow_the_docker_token_spec(signer: TokenSigner) -> None:
    token = signer.issue("", SERVICE, ACCESS[:1], TTL, now=NOW)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": signer.kid, "typ": "JWT"}
    body = jwt.decode(token, options={"verify_signature": False})
    stamp = int(NOW.timestamp())
    assert body == {
        "iss": "trustyard-test",
        "sub": "",
        "aud": SERVICE,
        "exp": stamp + 300,
        "nbf": stamp,
        "iat": stamp,
        "jti": body["jti"],
        "access": [{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}],
    }
    assert len(body["jti"]) >= 20
    assert signer.verify(token, SERVICE, now=NOW) == VerifiedToken(
        "", tuple(ACCESS[:1]), NOW + TTL, body["jti"]
    )


def test_kid_is_the_libtrust_key_id(signer: TokenSigner) -> None:
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", signer.kid)
    public = serialization.load_pem_public_key(signer.public_pem())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b32decode(signer.kid.replace(":", "")) == hashlib.sha256(der).digest()[:30]
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert key_id(public) == signer.kid
    assert TokenSigner.generate().kid != signer.kid


def test_tampered_payload_is_refused(signer: TokenSigner) -> None:
    header, _, signature = signer.issue("bob", SERVICE, ACCESS[:1], TTL, now=NOW).split(".")
    forged = claims(
        sub="bob", access=[{"type": "repository", "name": "acme/app", "actions": ["*"]}]
    )
    with pytest.raises(InvalidToken, match="signature is invalid"):
        signer.verify(f"{header}.{b64json(forged)}.{signature}", SERVICE, now=NOW)


def test_another_keys_signature_is_refused(signer: TokenSigner) -> None:
    other = TokenSigner.generate(issuer="trustyard-test")
    with pytest.raises(InvalidToken, match="unknown key"):
        signer.verify(other.issue("bob", SERVICE, [], TTL, now=NOW), SERVICE, now=NOW)
    impostor = jwt.encode(
        claims(), private_key(other), algorithm="ES256", headers={"kid": signer.kid}
    )
    with pytest.raises(InvalidToken, match="signature is invalid"):
        signer.verify(impostor, SERVICE, now=NOW)


def test_other_audience_is_refused(signer: TokenSigner) -> None:
    token = signer.issue("bob", "other-registry", [], TTL, now=NOW)
    with pytest.raises(InvalidToken, match="another service"):
        signer.verify(token, SERVICE, now=NOW)
    with pytest.raises(InvalidToken, match="another service"):
        signer.verify(sign(signer, claims(aud=[SERVICE, "other"])), SERVICE, now=NOW)


def test_other_issuer_is_refused(signer: TokenSigner) -> None:
    same_key = TokenSigner.from_pem(signer.private_pem(), issuer="someone-else")
    assert same_key.kid == signer.kid
    with pytest.raises(InvalidToken, match="another issuer"):
        signer.verify(same_key.issue("bob", SERVICE, [], TTL, now=NOW), SERVICE, now=NOW)


def test_expiry_with_leeway(signer: TokenSigner) -> None:
    token = signer.issue("bob", SERVICE, [], TTL, now=NOW)
    signer.verify(token, SERVICE, now=NOW + TTL - timedelta(seconds=1), leeway=timedelta(0))
    signer.verify(token, SERVICE, now=NOW + TTL + timedelta(seconds=29))
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, SERVICE, now=NOW + TTL, leeway=timedelta(0))
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, SERVICE, now=NOW + TTL + timedelta(seconds=30))
    old = signer.issue("bob", SERVICE, [], TTL, now=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(InvalidToken, match="expired"):  # against the real clock
        signer.verify(old, SERVICE)


def test_not_yet_valid_is_refused(signer: TokenSigner) -> None:
    token = signer.issue("bob", SERVICE, [], TTL, now=NOW)
    signer.verify(token, SERVICE, now=NOW - timedelta(seconds=29))
    with pytest.raises(InvalidToken, match="not valid yet"):
        signer.verify(token, SERVICE, now=NOW - timedelta(seconds=1), leeway=timedelta(0))
    early = signer.issue("bob", SERVICE, [], TTL, now=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(InvalidToken, match="not valid yet"):  # against the real clock
        signer.verify(early, SERVICE)


def test_alg_none_is_refused(signer: TokenSigner) -> None:
    header = b64json({"alg": "none", "typ": "JWT", "kid": signer.kid})
    for token in (f"{header}.{b64json(claims())}.", f"{header}.{b64json(claims())}"):
        with pytest.raises(InvalidToken):
            signer.verify(token, SERVICE, now=NOW)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_the_public_key_is_refused(signer: TokenSigner, alg: str) -> None:
    header = b64json({"alg": alg, "typ": "JWT", "kid": signer.kid})
    signing_input = f"{header}.{b64json(claims())}".encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    for secret in (signer.public_pem(), signer.public_pem().strip()):
        mac = hmac.new(secret, signing_input, digest).digest()
        with pytest.raises(InvalidToken, match="not signed with ES256"):
            signer.verify(f"{signing_input.decode()}.{b64(mac)}", SERVICE, now=NOW)


def test_es256_signature_with_a_different_header_alg_is_refused(signer: TokenSigner) -> None:
    token = sign(signer, claims())
    _, payload, signature = token.split(".")
    relabelled = b64json({"alg": "ES384", "typ": "JWT", "kid": signer.kid})
    with pytest.raises(InvalidToken, match="not signed with ES256"):
        signer.verify(f"{relabelled}.{payload}.{signature}", SERVICE, now=NOW)
    assert signer.verify(token, SERVICE, now=NOW).subject == "alice"


@pytest.mark.parametrize("missing", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"])
def test_every_claim_is_required(signer: TokenSigner, missing: str) -> None:
    with pytest.raises(InvalidToken, match=f"lacks the {missing} claim"):
        signer.verify(sign(signer, claims(**{missing: None})), SERVICE, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "never"},
        {"exp": float(NOW.timestamp() + 300)},
        {"exp": 1e30},  # a float far past what a datetime holds
        {"exp": 10**30},  # the same as a whole number (it overflowed into a 500)
        {"exp": 2**63},
        {"nbf": -(10**30)},
        {"nbf": True},
        {"iat": "now"},
        {"sub": 7},
        {"jti": 7},
        {"access": {"type": "repository"}},
        {"access": [{"type": "repository", "name": "acme/*", "actions": ["pull"]}]},
        {"access": [{"type": "repository", "name": "a", "actions": ["fly"]}]},
    ],
)
def test_malformed_claims_are_refused(signer: TokenSigner, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        signer.verify(sign(signer, claims(**changes)), SERVICE, now=NOW)


@settings(max_examples=200)
@given(st.text(max_size=120) | st.lists(st.text(max_size=20), max_size=4).map(".".join))
def test_junk_raises_only_invalid_token(text: str) -> None:
    with pytest.raises(InvalidToken):
        JUNK_SIGNER.verify(text, SERVICE, now=NOW)


def test_pem_round_trip_unencrypted(signer: TokenSigner) -> None:
    pem = signer.private_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = TokenSigner.from_pem(pem, issuer="trustyard-test")
    assert loaded.kid == signer.kid
    token = signer.issue("alice", SERVICE, ACCESS, TTL, now=NOW)
    assert loaded.verify(token, SERVICE, now=NOW).access == tuple(ACCESS)
    assert signer.verify(loaded.issue("x", SERVICE, [], TTL, now=NOW), SERVICE, now=NOW)


@pytest.mark.parametrize("passphrase", ["correct horse", b"\x00raw bytes\xff"])
def test_pem_round_trip_encrypted(signer: TokenSigner, passphrase: str | bytes) -> None:
    pem = signer.private_pem(passphrase)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert TokenSigner.from_pem(pem, passphrase).kid == signer.kid
    with pytest.raises(SigningKeyError, match="cannot load"):
        TokenSigner.from_pem(pem)
    with pytest.raises(SigningKeyError, match="cannot load"):
        TokenSigner.from_pem(pem, "wrong passphrase")


def test_unusable_keys_are_refused(signer: TokenSigner) -> None:
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError, match="not an EC key"):
        TokenSigner.from_pem(rsa_pem)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError, match="not P-256"):
        TokenSigner.from_pem(p384)
    with pytest.raises(SigningKeyError, match="cannot load"):
        TokenSigner.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match="cannot load"):
        TokenSigner.from_pem(signer.private_pem(), "a passphrase for a clear key")
    assert issubclass(SigningKeyError, AccessError)
    assert issubclass(InvalidToken, AccessError)


def test_lifetime_must_be_positive(signer: TokenSigner) -> None:
    with pytest.raises(ValueError, match="positive"):
        signer.issue("bob", SERVICE, [], timedelta(0))


def test_repr_shows_no_key(signer: TokenSigner) -> None:
    assert repr(signer) == f"TokenSigner(issuer='trustyard-test', kid='{signer.kid}')"

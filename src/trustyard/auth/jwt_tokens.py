"""Short-lived registry bearer tokens: ES256 JWTs as in the distribution token spec.

A `TokenSigner` holds an EC P-256 key. Its `kid` is the libtrust key id that registries
expect: the first 240 bits of the SHA-256 of the DER public key, base32, in 12 groups of 4
separated by ':'. `issue` writes iss, sub, aud, exp, nbf, iat, jti and the `access` claim;
`verify` accepts only ES256 tokens signed by this key, for this issuer and audience, inside
their validity window (give or take `leeway` for clocks that disagree between replicas), and
raises `InvalidToken` for anything else. The key is stored as PKCS#8 PEM, encrypted when a
passphrase is given.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trustyard.auth.interfaces import AccessError
from trustyard.auth.scopes import InvalidScope, ScopeGrant, TokenScope

ALGORITHM = "ES256"
DEFAULT_ISSUER = "trustyard"
DEFAULT_LEEWAY = timedelta(seconds=30)
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access")
# Times a token may carry: from the epoch to the end of the year 9999 (what a datetime holds).
_LATEST = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


class InvalidToken(AccessError):
    """A bearer token that must not be honoured (forged, expired, for another service...)."""


class SigningKeyError(AccessError):
    """A stored signing key that cannot be loaded (wrong passphrase, not EC P-256, damaged)."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str  # "" for an anonymous caller
    access: tuple[ScopeGrant, ...]
    expires_at: datetime
    token_id: str  # the jti claim

    @property
    def scope(self) -> TokenScope:
        return TokenScope.from_grants(self.access)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The libtrust key id of `public_key` (`ABCD:EFGH:...`, 12 groups)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class TokenSigner:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey, *, issuer: str = DEFAULT_ISSUER):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise SigningKeyError(f"the signing key is on {private_key.curve.name}, not P-256")
        self._key = private_key
        self._public = private_key.public_key()
        self.issuer = issuer
        self.kid = key_id(self._public)

    def __repr__(self) -> str:
        return f"TokenSigner(issuer={self.issuer!r}, kid={self.kid!r})"

    @classmethod
    def generate(cls, *, issuer: str = DEFAULT_ISSUER) -> TokenSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()), issuer=issuer)

    @classmethod
    def from_pem(
        cls, pem: bytes, passphrase: str | bytes | None = None, *, issuer: str = DEFAULT_ISSUER
    ) -> TokenSigner:
        try:
            key = serialization.load_pem_private_key(pem, password=_bytes(passphrase))
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise SigningKeyError(f"cannot load the signing key: {error}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SigningKeyError("the signing key is not an EC key")
        return cls(key, issuer=issuer)

    def private_pem(self, passphrase: str | bytes | None = None) -> bytes:
        """PKCS#8 PEM; encrypted with the best available cipher when a passphrase is given."""
        secret = _bytes(passphrase)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(secret)
            if secret
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def public_pem(self) -> bytes:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def issue(
        self,
        subject: str,
        audience: str,
        access: Iterable[ScopeGrant],
        ttl: timedelta,
        *,
        now: datetime | None = None,
    ) -> str:
        """A signed token for `subject` (the empty string for anonymous) at `audience`."""
        if ttl <= timedelta(0):
            raise ValueError("a token's lifetime must be positive")
        issued = int((now or datetime.now(UTC)).timestamp())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": issued + max(1, int(ttl.total_seconds())),
            "nbf": issued,
            "iat": issued,
            "jti": secrets.token_urlsafe(16),
            "access": [grant.to_claim() for grant in access],
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(
        self,
        token: str,
        audience: str,
        *,
        now: datetime | None = None,
        leeway: timedelta = DEFAULT_LEEWAY,
    ) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise InvalidToken(f"the token is not signed with {ALGORITHM}")
            if header.get("kid") != self.kid:
                raise InvalidToken("the token is signed by an unknown key")
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=self.issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_exp": False,  # checked below, against `now`
                    "verify_nbf": False,
                    "verify_iat": False,
                    "strict_aud": True,
                },
            )
        except InvalidToken:
            raise
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is for another service") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token comes from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is invalid") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"the token lacks the {error.claim} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise InvalidToken(f"malformed token: {error}") from None
        moment = int((now or datetime.now(UTC)).timestamp())
        slack = int(leeway.total_seconds())
        times = [claims["exp"], claims["nbf"], claims["iat"]]
        if not all(type(value) is int for value in times):
            raise InvalidToken("the token's exp, nbf and iat are not whole seconds")
        if not all(0 <= value <= _LATEST for value in times):
            raise InvalidToken("the token's exp, nbf and iat are out of range")
        expires, not_before, _ = times
        if moment >= expires + slack:
            raise InvalidToken("the token has expired")
        if moment < not_before - slack:
            raise InvalidToken("the token is not valid yet")
        subject, token_id, access = claims["sub"], claims["jti"], claims["access"]
        if not (isinstance(subject, str) and isinstance(token_id, str)):
            raise InvalidToken("the token's sub and jti are not strings")
        if not isinstance(access, list):
            raise InvalidToken("the token's access claim is not a list")
        try:
            grants = tuple(ScopeGrant.from_claim(entry) for entry in access)
        except InvalidScope as error:
            raise InvalidToken(f"the token's access claim is invalid: {error}") from None
        return VerifiedToken(subject, grants, datetime.fromtimestamp(expires, UTC), token_id)


def _bytes(passphrase: str | bytes | None) -> bytes | None:
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    return passphrase or None

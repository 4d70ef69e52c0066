"""Per-subscription secrets: generated, sealed at rest, and the signature of each body.

A receiver checks `X-Trustyard-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the exact
request body under the subscription's secret. Signing needs the secret itself, so it cannot be
stored as a one-way hash (a hash that could sign would be the key itself). It is sealed with
AES-256-GCM under a key derived (HKDF-SHA256) from the passphrase that already protects the
token-signing key (`auth.signing_passphrase`, kept outside the database and shared by the
replicas): a database dump alone reveals no secret. The API shows a secret once, when it is
created (or rotated), and never again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from trustyard.webhooks.interfaces import SecretUnreadable

SIGNATURE_HEADER = "X-Trustyard-Signature-256"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_VERSION = "v1."
_INFO = b"trustyard webhook secrets v1"
_AAD = b"trustyard webhook secret"


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SecretBox:
    """Seals and opens secrets. The passphrase may be given lazily (a function called on
    first use), so that building a box reads no file."""

    def __init__(
        self,
        passphrase: str | Callable[[], str],
        *,
        info: bytes = _INFO,
        aad: bytes = _AAD,
    ) -> None:
        """`info` labels the key's derivation and `aad` binds each sealed value to its use:
        another feature (mirroring's credentials) passes its own, so a value sealed for one
        use does not open as another's; the defaults are webhooks' own."""
        self._passphrase = passphrase
        self._info = info
        self._aad = aad
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            source = self._passphrase if isinstance(self._passphrase, str) else self._passphrase()
            if not source:
                raise ValueError("webhook secrets need a non-empty passphrase")
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self._info).derive(
                source.encode()
            )
            self._aead = AESGCM(key)
        return self._aead

    def seal(self, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._cipher().encrypt(nonce, secret.encode(), self._aad)
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(_VERSION):
            raise SecretUnreadable("unknown secret format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            return self._cipher().decrypt(raw[:12], raw[12:], self._aad).decode()
        except (InvalidTag, ValueError) as error:
            raise SecretUnreadable(
                "the subscription's secret cannot be decrypted (was auth.signing_passphrase "
                "changed?): set a new secret"
            ) from error

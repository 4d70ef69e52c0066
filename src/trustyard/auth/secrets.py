"""Access-token texts (shown once, stored hashed) and generated passwords.

A token reads `ty_<kind>_<public id>_<secret>`: kind `pat` (personal access token) or `rbt`
(robot), a public id of 12 lower-case base32 characters that finds the stored row (safe to log
and to show in lists), and a secret of 32 random bytes in URL-safe base64 without padding. Only
the SHA-256 of the secret is stored: the secret is random, so a slow hash would add nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Literal, NamedTuple, cast

TokenKind = Literal["pat", "rbt"]
TOKEN_KINDS: tuple[TokenKind, ...] = ("pat", "rbt")
PREFIX = "ty"
PUBLIC_ID_LENGTH = 12
SECRET_BYTES = 32
PUBLIC_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower case
# No look-alikes (0 O o 1 l I) and nothing a shell or a URL would mangle.
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105
PASSWORD_LENGTH = 24

_SECRET_LENGTH = len(base64.urlsafe_b64encode(bytes(SECRET_BYTES)).rstrip(b"="))  # 43
_TOKEN_RE = re.compile(
    rf"{PREFIX}_(pat|rbt)_([a-z2-7]{{{PUBLIC_ID_LENGTH}}})_([A-Za-z0-9_-]{{{_SECRET_LENGTH}}})"
)


class NewToken(NamedTuple):
    """A freshly made token: show `text` once, store `public_id` and `secret_hash`."""

    text: str
    public_id: str
    secret_hash: str

    def __repr__(self) -> str:
        return f"NewToken(public_id={self.public_id!r}, secret_hash={self.secret_hash!r})"


class ParsedToken(NamedTuple):
    kind: TokenKind
    public_id: str
    secret: str

    def __repr__(self) -> str:
        return f"ParsedToken(kind={self.kind!r}, public_id={self.public_id!r})"


def new_token(kind: TokenKind) -> NewToken:
    """A new token of `kind`; unpacks as `(text, public_id, secret_hash)`."""
    if kind not in TOKEN_KINDS:
        raise ValueError(f"token kind is one of {TOKEN_KINDS}, not {kind!r}")
    public_id = "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
    text = f"{PREFIX}_{kind}_{public_id}_{secret}"
    return NewToken(text, public_id, hash_secret(secret))


def parse_token(text: str) -> ParsedToken | None:
    """The parts of a well-formed token text, or None for anything else (a password, say)."""
    match = _TOKEN_RE.fullmatch(text)
    if match is None:
        return None
    kind, public_id, secret = match.groups()
    try:  # canonical encoding only: the unused low bits of the last character are zero
        raw = base64.urlsafe_b64decode(secret + "=")
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != secret:
        return None
    return ParsedToken(cast(TokenKind, kind), public_id, secret)


def hash_secret(secret: str) -> str:
    """What is stored for a secret: its SHA-256, hexadecimal."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    presented = hash_secret(secret).encode("ascii")
    return hmac.compare_digest(presented, stored_hash.encode("utf-8", "surrogatepass"))


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password of readable characters (24 give about 139 bits)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))

"""Content digests: parsing, the algorithms we accept, and streaming verification."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from trustyard.errors import DigestInvalid

# Grammar from the OCI image spec (descriptor.md): algorithm ":" encoded.
# Matched with fullmatch: `$` would accept a trailing newline.
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# Registered algorithms and the exact shape of their encoded part.
_ALGORITHMS: dict[str, re.Pattern[str]] = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
DEFAULT_ALGORITHM = "sha256"


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> Hasher:
        return new_hasher(self.algorithm)


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    if algorithm not in _ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def parse_digest(text: str) -> Digest:
    """Parse and validate a digest string; unsupported algorithms are DIGEST_INVALID."""
    if len(text) > 256 or not _DIGEST_RE.fullmatch(text):
        raise DigestInvalid(f"invalid digest {text[:80]!r}")
    algorithm, _, encoded = text.partition(":")
    shape = _ALGORITHMS.get(algorithm)
    if shape is None:
        raise DigestInvalid(
            f"unsupported digest algorithm {algorithm!r}; supported: "
            + ", ".join(sorted(_ALGORITHMS)),
        )
    if not shape.fullmatch(encoded):
        raise DigestInvalid(f"malformed {algorithm} digest {text[:80]!r}")
    return Digest(algorithm, encoded)


def digest_bytes(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return Digest(algorithm, hasher.hexdigest())

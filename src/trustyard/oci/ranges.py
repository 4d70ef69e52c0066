"""HTTP byte ranges: `Range` on blob GET and `Content-Range` on upload PATCH."""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustyard.errors import RangeInvalid

_RANGE_RE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?$")


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """The requested range lies outside the blob (HTTP 416)."""


def parse_range(header: str, size: int) -> ByteRange | None:
    """Resolve a single `Range: bytes=...` against a blob of `size` bytes.

    Returns None when the header should be ignored (not a single bytes range, so the whole
    blob is sent) and raises RangeNotSatisfiable for a range that does not overlap the blob,
    or is reversed (`bytes=500-0`: RFC 9110 calls it invalid; the OCI conformance suite and
    clients expect 416 rather than the whole blob).
    """
    m = _RANGE_RE.match(header.strip())
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or (last and end < start):  # an open range is never reversed
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size - 1))


def parse_content_range(header: str) -> ByteRange:
    """Parse the `Content-Range` of an upload chunk: `start-end`, inclusive."""
    m = _CONTENT_RANGE_RE.match(header.strip())
    if m is None:
        raise RangeInvalid(f"malformed Content-Range {header[:60]!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RangeInvalid("Content-Range end is before its start")
    return ByteRange(start, end)

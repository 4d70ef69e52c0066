"""Header parsing for the OCI client: WWW-Authenticate challenges, Link and Range."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: bearer, basic...
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a WWW-Authenticate header (registries send one)."""
    text = header.strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", scheme):
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else (m.group(3) or "")
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


def parse_link_next(header: str | None) -> str | None:
    """The target of rel="next" in a Link header, or None."""
    if not header:
        return None
    for part in header.split(","):
        m = re.match(r"\s*<([^>]*)>\s*;(.*)", part)
        if m and re.search(r'rel\s*=\s*"?next"?', m.group(2)):
            return m.group(1)
    return None


def parse_range_end(header: str | None) -> int | None:
    """The bytes an upload holds from a Range header `0-<last>`: last + 1; None when absent or
    malformed ("0-0" on an empty upload is reported as 0 by some registries)."""
    if header is None:
        return None
    m = re.fullmatch(r"\s*(?:bytes=)?0-(\d{1,19})\s*", header)
    if m is None:
        return None
    last = int(m.group(1))
    return 0 if last == 0 else last + 1

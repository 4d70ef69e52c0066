"""A promotion policy's tag template: the target tag a promoted image gets.

`%n` is the source tag (promoted by digest: the short digest), `%h` the short digest (its
first 12 hex characters), `%%` a percent sign, and DTR's date codes the time of promotion in
UTC: `%A` Monday, `%a` Mon, `%w` 1 (Sunday 0), `%d` 07, `%B` December, `%b` Dec, `%m` 12,
`%Y` 2026, `%y` 26, `%H` 22, `%I` 10, `%p` PM, `%M` 05, `%S` 09, `%f` 000123 (microseconds),
`%Z` UTC, `%j` 341 (day of the year), `%W` 49 (week of the year, Monday first). The names are
English whatever the locale. Anything else after `%` is refused when the policy is saved, as
is literal text a tag may never hold; a tag rendered too long (a long source tag) refuses the
promotion it was rendered for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from trustyard.oci.names import is_valid_tag
from trustyard.policies.interfaces import PolicyInvalid, PromotionRefused

MAX_TEMPLATE_CHARS = 256
SHORT_DIGEST = 12
MAX_TAG_CHARS = 128
_WHERE = "tagTemplate"
_LITERAL = re.compile(r"[A-Za-z0-9._-]*")

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# code -> its text at a UTC time (English names, zero-padded numbers, as C's strftime)
_DATE_CODES: dict[str, Callable[[datetime], str]] = {
    "A": lambda t: _DAYS[t.weekday()],
    "a": lambda t: _DAYS[t.weekday()][:3],
    "w": lambda t: str(t.isoweekday() % 7),
    "d": lambda t: f"{t.day:02d}",
    "B": lambda t: _MONTHS[t.month - 1],
    "b": lambda t: _MONTHS[t.month - 1][:3],
    "m": lambda t: f"{t.month:02d}",
    "Y": lambda t: f"{t.year:04d}",
    "y": lambda t: f"{t.year % 100:02d}",
    "H": lambda t: f"{t.hour:02d}",
    "I": lambda t: f"{(t.hour % 12) or 12:02d}",
    "p": lambda t: "AM" if t.hour < 12 else "PM",
    "M": lambda t: f"{t.minute:02d}",
    "S": lambda t: f"{t.second:02d}",
    "f": lambda t: f"{t.microsecond:06d}",
    "Z": lambda t: "UTC",
    "j": lambda t: f"{t.timetuple().tm_yday:03d}",
    "W": lambda t: t.strftime("%W"),  # digits only, locale-free
}
_CODES = frozenset({"n", "h", "%", *_DATE_CODES})
# the shortest each code renders (2 for the others): a template longer than a tag even so is
# refused when saved
_SHORTEST = {"n": 1, "h": SHORT_DIGEST, "w": 1, "A": 6, "a": 3, "B": 3, "b": 3}
_SHORTEST |= {"f": 6, "Y": 4, "Z": 3, "j": 3}


def _parts(text: str) -> list[tuple[str, str]]:
    """The template as (kind, text) pieces: ("lit", "v-") or ("code", "n"); refuses a
    `%` not followed by a known code."""
    parts: list[tuple[str, str]] = []
    i, literal = 0, []
    while i < len(text):
        char = text[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code not in _CODES:
            shown = f"%{code}" if code else "a '%' at the end"
            known = " ".join(f"%{c}" for c in sorted(_CODES))
            raise PolicyInvalid(_WHERE, f"{shown} is not a template code (known: {known})")
        if code == "%":
            literal.append("%")
        else:
            if literal:
                parts.append(("lit", "".join(literal)))
                literal = []
            parts.append(("code", code))
        i += 2
    if literal:
        parts.append(("lit", "".join(literal)))
    return parts


def check_template(text: object) -> str:
    """`text` when it is a template every promotion can render (a string of known codes and
    tag characters), else PolicyInvalid naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise PolicyInvalid(_WHERE, "a tag template is a non-empty string, such as '%n'")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise PolicyInvalid(_WHERE, f"longer than {MAX_TEMPLATE_CHARS} characters")
    parts = _parts(text)
    for kind, piece in parts:
        if kind == "lit" and not _LITERAL.fullmatch(piece):
            bad = next(c for c in piece if not _LITERAL.fullmatch(c))
            raise PolicyInvalid(
                _WHERE, f"{bad!r} cannot be part of a tag (letters, digits, '.', '_', '-')"
            )
    first_kind, first = parts[0]
    if first_kind == "lit" and first[0] in ".-":
        raise PolicyInvalid(_WHERE, "a tag cannot start with '.' or '-'")
    shortest = sum(len(p) if k == "lit" else _SHORTEST.get(p, 2) for k, p in parts)
    if shortest > MAX_TAG_CHARS:
        raise PolicyInvalid(_WHERE, f"renders longer than a tag's {MAX_TAG_CHARS} characters")
    return text


def short_digest(digest: str) -> str:
    """The first 12 hex characters of `sha256:<hex>`."""
    return digest.partition(":")[2][:SHORT_DIGEST] or digest[:SHORT_DIGEST]


def render(template: str, tag: str | None, digest: str, now: datetime) -> str:
    """The target tag: `template` with its codes filled for an image promoted from `tag`
    (None when promoted by digest) at `now`. PromotionRefused when the result is not a tag
    (too long: a long source tag with a suffix)."""
    when = now.astimezone(UTC) if now.tzinfo is not None else now
    out: list[str] = []
    for kind, piece in _parts(template):
        if kind == "lit":
            out.append(piece)
        elif piece == "n":
            out.append(tag if tag is not None else short_digest(digest))
        elif piece == "h":
            out.append(short_digest(digest))
        else:
            out.append(_DATE_CODES[piece](when))
    rendered = "".join(out)
    if not is_valid_tag(rendered):
        raise PromotionRefused(
            f"the tag template {template!r} renders {rendered[:200]!r}, which is not a valid tag "
            "(at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-')",
            {"tagTemplate": template, "tag": rendered[:200]},
        )
    return rendered

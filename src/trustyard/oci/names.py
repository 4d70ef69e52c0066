"""Repository name and tag grammar (OCI distribution spec, "Pulling manifests")."""

from __future__ import annotations

import re

from trustyard.errors import NameInvalid, TagInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
# Matched with fullmatch: `$` would accept a trailing newline.
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

# Together with the registry host a reference must stay below 255 characters.
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(name) is not None


def check_name(name: str) -> str:
    if not is_valid_name(name):
        raise NameInvalid(
            "invalid repository name: use lower-case path components separated by '/'",
            {"name": name[:300]},
        )
    return name


def is_valid_tag(tag: str) -> bool:
    return _TAG_RE.fullmatch(tag) is not None


def check_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise TagInvalid(
            "invalid tag: at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
            {"tag": tag[:200]},
        )
    return tag

"""Licence texts as packages declare them -> SPDX license expressions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from license_expression import ExpressionError, Licensing, get_spdx_licensing

_REF_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
_OPERATORS = re.compile(r"(\s+(?:AND|OR|WITH|and|or)\s+|[()])")

# Names packages use that the SPDX list spells differently.
_ALIASES = {
    "apache 2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause",
    "bsd-2": "BSD-2-Clause",
    "mit license": "MIT",
    "expat": "MIT",
    "psf": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "gpl": "LicenseRef-GPL",  # no version named: not a guess at one
    "gpl-2": "GPL-2.0-only",
    "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only",
    "gpl-3+": "GPL-3.0-or-later",
    "lgpl-2": "LGPL-2.0-only",
    "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later",
    "mpl 2.0": "MPL-2.0",
    "mpl-2.0": "MPL-2.0",
    "public domain": "LicenseRef-public-domain",
    "zlib": "Zlib",
    "isc license": "ISC",
}


@lru_cache(maxsize=1)
def _licensing() -> Licensing:
    return get_spdx_licensing()


def license_ref(text: str) -> str:
    """A `LicenseRef-` identifier for a licence the SPDX list does not name."""
    ref = _REF_CHARS.sub("-", text.strip()).strip("-")[:64]
    return f"LicenseRef-{ref or 'unknown'}"


@lru_cache(maxsize=4096)
def spdx_expression(text: str | None) -> str | None:
    """Never raises: an unreadable licence is not a scan failure (see `_expression`)."""
    try:
        return _expression(text)
    except Exception:  # the parser library's own failures on odd input
        return license_ref(text) if text and text.strip() else None


def _expression(text: str | None) -> str | None:
    """Normalise a declared licence (`MIT`, `Apache 2.0`, `GPL-2+ or Artistic`, `BSD
    License`...) into an SPDX expression; parts with no SPDX identifier become `LicenseRef-`;
    None for nothing declared."""
    if text is None:
        return None
    text = text.strip()
    if not text or text.upper() in {"UNKNOWN", "NONE", "NOASSERTION"}:
        return None
    alias = _ALIASES.get(text.lower())
    if alias:
        return alias
    licensing = _licensing()
    if any(token.strip().lower() in _ALIASES for token in _OPERATORS.split(text)):
        return _rebuild(text, licensing)  # `GPL-2 or Artistic`, `MIT or Apache 2.0`...
    try:
        parsed = licensing.parse(text, validate=False, simple=False)
    except (ExpressionError, IndexError):  # boolean.py fails on `()`
        return license_ref(text)
    if parsed is None:
        return None
    for symbol in licensing.license_symbols(parsed, unique=True, decompose=True):
        key = symbol.key
        if _is_ref_or_exception(key, licensing):
            continue
        if licensing.validate(key).errors:
            return _rebuild(text, licensing)
    return str(licensing.dedup(parsed))


def _is_ref_or_exception(key: str, licensing: Licensing) -> bool:
    """Already a `LicenseRef-`, or an SPDX exception (valid after WITH, not on its own)."""
    if key.startswith("LicenseRef-"):
        return True
    return bool(getattr(licensing.known_symbols.get(key), "is_exception", False))


def any_of(expressions: Iterable[str | None]) -> str | None:
    """Several licences a package offers to choose from (npm's and Composer's lists, gem
    `licenses`, Python classifiers) -> one expression (OR), duplicates and blanks dropped."""
    choices = list(dict.fromkeys(e for e in expressions if e))
    if not choices:
        return None
    if len(choices) == 1:
        return choices[0]
    return " OR ".join(f"({c})" if " " in c else c for c in choices)


def combine(expressions: list[str]) -> str | None:
    """Several declared licences of one component -> one expression (AND)."""
    unique = list(dict.fromkeys(e for e in expressions if e))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return " AND ".join(f"({e})" if " " in e else e for e in unique)


def _rebuild(text: str, licensing: Licensing) -> str:
    """Replace unknown symbols one by one (aliases or LicenseRef-) and keep the operators."""
    tokens = _OPERATORS.split(text)
    out: list[str] = []
    for token in tokens:
        stripped = token.strip()
        if not stripped:
            continue
        if stripped.upper() in {"AND", "OR", "WITH"} or stripped in {"(", ")"}:
            out.append(stripped.upper() if stripped not in {"(", ")"} else stripped)
            continue
        alias = _ALIASES.get(stripped.lower())
        if alias:
            out.append(alias)
        elif _is_ref_or_exception(stripped, licensing):
            out.append(stripped)
        elif not licensing.validate(stripped).errors:
            out.append(str(licensing.parse(stripped)))
        else:
            out.append(license_ref(stripped))
    joined = " ".join(out).replace("( ", "(").replace(" )", ")")
    try:
        return str(licensing.parse(joined, validate=False))
    except (ExpressionError, IndexError):
        return license_ref(text)

"""Each ecosystem's own version order, as sort keys.

`parse_version(scheme, text)` answers a key that compares (`<`, `==`) as the ecosystem's
package manager orders versions; `scheme_for(ecosystem)` names the scheme of an OSV ecosystem
(`Debian:12` is Debian's). Matching sorts range events and compares a component's version with
them, many thousands of times per image, so the keys are plain tuples where the order allows
(SemVer, Go, dpkg, apk) and parsed objects of the ecosystem's library elsewhere:

- PyPI: PEP 440 through `packaging` (the pip resolver's own).
- npm, crates.io: SemVer 2.0 precedence (`semver` parses; build metadata is ignored).
- Go: SemVer with the leading `v`, `+incompatible` (build metadata, ignored) and the module
  system's shorthands `v1`, `v1.2`; pseudo-versions are pre-releases and order by their time
  stamp; a toolchain version (`go1.21rc2`) reads as `1.21.0-rc.2`.
- Debian (and Ubuntu): dpkg's order (epoch, upstream, revision; `~` before everything, even
  the end) written here as a key, checked against `dpkg --compare-versions` in the tests.
- Alpine: apk-tools' order (`_alpha` < `_beta` < `_pre` < `_rc` < release < `_cvs` < `_svn` <
  `_git` < `_hg` < `_p`, a letter after the numbers, `-rN` revisions), written here.
- RPM distributions: rpmvercmp with epochs, through `univers`.
- Maven, NuGet, RubyGems: `univers`' ports of each tool's comparison.
- Packagist: Composer's own order, written here (`univers` orders Composer versions as plain
  SemVer, `RC1` before `alpha1`): Composer's normalisation (`v1.2` is `1.2.0.0`, `1.0-rc1` is
  `1.0.0.0-RC1`, `p1`/`pl1` are `patch1`), then PHP's `version_compare` on the result:
  dev < alpha < beta < RC < the release < patch. A branch (`dev-main`) has no order.

A version its scheme cannot read raises `VersionInvalid`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

import semver
from packaging.version import InvalidVersion
from packaging.version import Version as Pep440Version

from trustyard.errors import Invalid

MAX_VERSION_CHARS = 256


class VersionInvalid(Invalid):
    """A version that its ecosystem's scheme cannot read."""

    def __init__(self, scheme: Scheme, version: str, reason: str = "") -> None:
        shown = version[:80]
        super().__init__(
            f"{shown!r} is not a version of the {scheme.value} scheme"
            + (f": {reason}" if reason else ""),
            {"scheme": scheme.value, "version": shown},
        )
        self.scheme = scheme
        self.version = version


class Scheme(StrEnum):
    PEP440 = "PyPI"
    SEMVER = "SemVer"
    GO = "Go"
    DPKG = "Debian"
    APK = "Alpine"
    RPM = "RPM"
    MAVEN = "Maven"
    NUGET = "NuGet"
    RUBYGEMS = "RubyGems"
    COMPOSER = "Composer"


# OSV ecosystem (the part before a ':' release suffix) -> scheme.
ECOSYSTEMS: dict[str, Scheme] = {
    "PyPI": Scheme.PEP440,
    "npm": Scheme.SEMVER,
    "crates.io": Scheme.SEMVER,
    "Hex": Scheme.SEMVER,
    "Pub": Scheme.SEMVER,
    "SwiftURL": Scheme.SEMVER,
    "Go": Scheme.GO,
    "Debian": Scheme.DPKG,
    "Ubuntu": Scheme.DPKG,
    "Alpine": Scheme.APK,
    "Wolfi": Scheme.APK,
    "Chainguard": Scheme.APK,
    "Red Hat": Scheme.RPM,
    "Rocky Linux": Scheme.RPM,
    "AlmaLinux": Scheme.RPM,
    "openSUSE": Scheme.RPM,
    "SUSE": Scheme.RPM,
    "Mageia": Scheme.RPM,
    "openEuler": Scheme.RPM,
    "Maven": Scheme.MAVEN,
    "NuGet": Scheme.NUGET,
    "RubyGems": Scheme.RUBYGEMS,
    "Packagist": Scheme.COMPOSER,
}


def base_ecosystem(ecosystem: str) -> str:
    """`Debian:12` -> `Debian`, `Alpine:v3.19` -> `Alpine`, `PyPI` -> `PyPI`."""
    return ecosystem.partition(":")[0]


def scheme_for(ecosystem: str) -> Scheme | None:
    """The version scheme of an OSV ecosystem, None for one without a known order (its
    records can then match through their explicit `versions` only)."""
    return ECOSYSTEMS.get(base_ecosystem(ecosystem))


class VersionKey(Protocol):
    """What every key offers: a total order within its scheme."""

    def __lt__(self, other: Any, /) -> bool: ...  # and `==`, which every object has


def parse_version(scheme: Scheme, text: str) -> VersionKey:
    """The sort key of `text` in `scheme` (cached: the same versions recur in every BOM)."""
    if len(text) > MAX_VERSION_CHARS:
        raise VersionInvalid(scheme, text, f"longer than {MAX_VERSION_CHARS} characters")
    return _parse(scheme, text)


def compare(scheme: Scheme, a: str, b: str) -> int:
    """-1, 0 or 1 as `a` sorts before, with or after `b`."""
    ka, kb = parse_version(scheme, a), parse_version(scheme, b)
    return -1 if ka < kb else (0 if ka == kb else 1)


@lru_cache(maxsize=65536)
def _parse(scheme: Scheme, text: str) -> VersionKey:
    return _PARSERS[scheme](text)


# --- PyPI --------------------------------------------------------------------------------


def _pep440(text: str) -> VersionKey:
    try:
        return Pep440Version(text)
    except InvalidVersion:
        raise VersionInvalid(Scheme.PEP440, text, "not PEP 440") from None


# --- SemVer and Go ----------------------------------------------------------------------

_Prerelease = tuple[tuple[int, int, str], ...]


def _semver_key(scheme: Scheme, text: str, *, shorthand: bool = False) -> VersionKey:
    try:
        v = semver.Version.parse(text, optional_minor_and_patch=shorthand)
    except (ValueError, TypeError):
        raise VersionInvalid(scheme, text) from None
    if v.prerelease is None:
        return (v.major, v.minor, v.patch, (1,))
    # SemVer 2.0 section 11: numeric identifiers below alphanumeric ones, numbers by value,
    # text in ASCII order, and a longer list above its own prefix. A release is above all.
    ids: _Prerelease = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in v.prerelease.split(".")
    )
    return (v.major, v.minor, v.patch, (0, ids))


def _semver(text: str) -> VersionKey:
    # npm accepts a leading "v" or "=" (node-semver's clean); nothing else is loose.
    stripped = text[1:] if text[:1] in ("v", "=") else text
    return _semver_key(Scheme.SEMVER, stripped)


_GO_TOOLCHAIN = re.compile(r"go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(beta|rc)(\d+))?")


def _go(text: str) -> VersionKey:
    toolchain = _GO_TOOLCHAIN.fullmatch(text)
    if toolchain:  # go1.21rc2, go1.20, go1.19.8: the standard library at that release
        major, minor, patch, kind, number = toolchain.groups()
        text = f"{major}.{minor or 0}.{patch or 0}" + (f"-{kind}.{number}" if kind else "")
    elif text.startswith("v"):
        text = text[1:]
    if "-" in text.partition("+")[0] and text.count(".", 0, text.find("-")) < 2:
        raise VersionInvalid(Scheme.GO, text, "a shorthand version has no pre-release")
    return _semver_key(Scheme.GO, text, shorthand=True)


# --- Debian: dpkg ----------------------------------------------------------------------

_DPKG = re.compile(r"(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*)")
_DPKG_PART = re.compile(r"([^0-9]*)([0-9]*)")
_END = (1,)  # the end of a string: after "~", before anything else


def _dpkg_weight(char: str) -> int:
    if char == "~":
        return 0
    if char.isalpha():
        return 2 + ord(char)
    return 2 + 256 + ord(char)


def _dpkg_string(text: str) -> tuple[object, ...]:
    """dpkg's verrevcmp as a key: alternating non-digit runs (compared character by
    character, `~` lowest, the end next, letters before other characters) and digit runs
    (by value), closed by the end marker. Every key starts with a non-digit run (empty for
    a digit first), so the runs of two keys line up; "" reads as "0", as in dpkg."""
    parts: list[object] = []
    for letters, digits in _DPKG_PART.findall(text):
        if not letters and not digits:
            continue
        parts.append((*(_dpkg_weight(c) for c in letters), *_END))
        parts.append(int(digits) if digits else 0)
    if not parts:  # "" reads as "0"
        parts = [_END, 0]
    parts.append(_END)
    return tuple(parts)


def _dpkg(text: str) -> VersionKey:
    match = _DPKG.fullmatch(text)
    if not match:
        raise VersionInvalid(Scheme.DPKG, text)
    epoch, rest = match.groups()
    if ":" in rest and epoch is None:
        raise VersionInvalid(Scheme.DPKG, text, "a colon needs an epoch")
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    elif not revision or not upstream or not upstream[0].isdigit():
        raise VersionInvalid(Scheme.DPKG, text, "empty upstream version or revision")
    elif not re.fullmatch(r"[A-Za-z0-9.+~]+", revision):
        raise VersionInvalid(Scheme.DPKG, text, "bad revision")
    return (int(epoch or 0), _dpkg_string(upstream), _dpkg_string(revision))


# --- Alpine: apk -------------------------------------------------------------------------

_APK = re.compile(
    r"(?P<numbers>\d+(?:\.\d+)*)(?P<letter>[a-z])?"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
    r"(?:~(?P<hash>[0-9a-f]+))?(?:-r(?P<revision>\d+))?"
)
_APK_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
_APK_SUFFIXES = {
    "alpha": 0,
    "beta": 1,
    "pre": 2,
    "rc": 3,
    "cvs": 5,
    "svn": 6,
    "git": 7,
    "hg": 8,
    "p": 9,
}
# Where two versions first differ in the kind of token, apk-tools ranks them: a number above a
# letter above a post-release suffix above a suffix's number above a commit hash above a
# revision above the end; a pre-release suffix is below everything, the end included.
_PRE, _APK_END, _REV, _HASH, _SUFFIX_NO, _POST, _LETTER, _DIGIT = range(8)


def _apk(text: str) -> VersionKey:
    match = _APK.fullmatch(text)
    if not match:
        raise VersionInvalid(Scheme.APK, text)
    tokens: list[tuple[int, int, str]] = [(_DIGIT, int(n), "") for n in match["numbers"].split(".")]
    if match["letter"]:
        tokens.append((_LETTER, ord(match["letter"]), ""))
    for name, number in _APK_SUFFIX.findall(match["suffixes"]):
        rank = _APK_SUFFIXES[name]
        tokens.append((_PRE if rank < 4 else _POST, rank, ""))
        if number:
            tokens.append((_SUFFIX_NO, int(number), ""))
    if match["hash"]:
        tokens.append((_HASH, 0, match["hash"]))
    if match["revision"]:
        tokens.append((_REV, int(match["revision"]), ""))
    tokens.append((_APK_END, 0, ""))
    return tuple(tokens)


# --- Packagist: Composer -----------------------------------------------------------------
# composer/semver's VersionParser::normalize, then PHP's version_compare on what it gives.

_CF = re.IGNORECASE | re.ASCII  # PCRE's \d and \s without /u are ASCII
_PHP_TRIM = " \t\n\r\0\x0b"
_MODIFIER = r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+)*+)?)?([.-]?dev)?"
_COMPOSER_CLASSIC = re.compile(r"v?(\d{1,5})(\.\d++)?(\.\d++)?(\.\d++)?" + _MODIFIER, _CF)
_COMPOSER_DATE = re.compile(r"v?(\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3}){0,2})" + _MODIFIER, _CF)
_COMPOSER_ALIAS = re.compile(r"([^,\s]++) ++as ++[^,\s]++", re.ASCII)
_COMPOSER_FLAG = re.compile(r"@(?:stable|RC|beta|alpha|dev)$", _CF)
_COMPOSER_BUILD = re.compile(r"([^,\s+]++)\+[^\s]++", re.ASCII)
_COMPOSER_DEV = re.compile(r"(.*?)[.-]?dev$", _CF)
_COMPOSER_BRANCH = re.compile(
    r"v?(\d++)(\.(?:\d++|[xX*]))?(\.(?:\d++|[xX*]))?(\.(?:\d++|[xX*]))?", _CF
)
_STABILITIES = {"a": "alpha", "b": "beta", "p": "patch", "pl": "patch", "rc": "RC"}
# version_compare's "special forms", matched as prefixes in this order; a number counts as
# "#" and anything else as -1 (below dev).
_PHP_FORMS = (
    ("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2), ("RC", 3), ("rc", 3),
    ("#", 4), ("pl", 5), ("p", 5),
)  # fmt: skip
_PHP_NUMBER = 4
_PHP_PART = re.compile(r"\d+|[A-Za-z]+", re.ASCII)


def composer_normalize(version: str) -> str:
    """Composer's normal form (`v1.0-RC1` -> `1.0.0.0-RC1`, `dev-main` stays); `ValueError`
    for what Composer refuses."""
    text = version.strip(_PHP_TRIM)
    if alias := _COMPOSER_ALIAS.fullmatch(text):
        text = alias[1]
    if flag := _COMPOSER_FLAG.search(text):
        text = text[: flag.start()]
    if text in ("master", "trunk", "default"):
        text = "dev-" + text
    if text[:4].lower() == "dev-":
        return "dev-" + text[4:]
    if build := _COMPOSER_BUILD.fullmatch(text):
        text = build[1]
    if match := _COMPOSER_CLASSIC.fullmatch(text):
        normal = "".join([match[1], match[2] or ".0", match[3] or ".0", match[4] or ".0"])
        stability, number, dev = match.group(5, 6, 7)
    elif match := _COMPOSER_DATE.fullmatch(text):
        normal = re.sub(r"\D", ".", match[1])
        stability, number, dev = match.group(2, 3, 4)
    else:
        if (dev_branch := _COMPOSER_DEV.search(text)) and (
            numeric := _composer_branch(dev_branch[1])
        ):
            return numeric
        raise ValueError(f"not a Composer version: {version!r:.80}")
    if stability:
        if stability == "stable":  # case-sensitive in Composer: "STABLE" becomes "-stable"
            return normal
        lowered = stability.lower()
        normal += "-" + _STABILITIES.get(lowered, lowered) + (number or "").lstrip(".-")
    if dev:
        normal += "-dev"
    return normal


def _composer_branch(name: str) -> str | None:
    """A numeric branch (`1.x`, `v2.1.*`) as Composer's version of it, None for a name."""
    match = _COMPOSER_BRANCH.fullmatch(name.strip(_PHP_TRIM))
    if not match:
        return None
    parts = (match[i] if match[i] is not None else ".x" for i in range(1, 5))
    wild = "".join(parts).replace("*", "x").replace("X", "x")
    return wild.replace("x", "9999999") + "-dev"


def _php_form(word: str) -> int:
    for prefix, rank in _PHP_FORMS:
        if word.startswith(prefix):
            return rank
    return -1


def _composer(text: str) -> VersionKey:
    try:
        normal = composer_normalize(text)
    except ValueError:
        raise VersionInvalid(Scheme.COMPOSER, text) from None
    if normal.startswith("dev-"):
        raise VersionInvalid(Scheme.COMPOSER, text, "a branch has no order")
    # version_compare splits at dots and at every change between digits and letters, then
    # compares part by part: numbers by value, words by their form, a number as the form
    # "#". Where one version ends, a further number makes the other one higher and a word
    # is compared with "#" (1.0 < 1.0-patch1, 1.0-RC1 < 1.0): the end is (4, -1).
    key = [
        (_PHP_NUMBER, int(part)) if part.isdigit() else (_php_form(part), 0)
        for part in _PHP_PART.findall(normal)
    ]
    key.append((_PHP_NUMBER, -1))
    return tuple(key)


# --- univers: RPM, Maven, NuGet, RubyGems -------------------------------------------------


class _Ordered:
    """A parsed version whose library compares through a function: `<` and `==` both ask it,
    so equality is the order's (RPM's 1.0 and 1.00 are equal), never the text's."""

    __slots__ = ("cmp", "value")
    __hash__ = None  # type: ignore[assignment]  # equal keys may differ in text

    def __init__(self, value: object, cmp: Callable[[Any, Any], int]) -> None:
        self.value = value
        self.cmp = cmp

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, _Ordered):
            return NotImplemented  # matching's lowest key answers for itself
        return bool(self.cmp(self.value, other.value) < 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and self.cmp(self.value, other.value) == 0


def _by_operators(a: Any, b: Any) -> int:
    return -1 if a < b else (1 if b < a else 0)


def _univers(scheme: Scheme, build: Callable[[str], object], text: str) -> VersionKey:
    try:
        value = build(text)
    except Exception:  # univers raises ValueError, TypeError, IndexError...
        raise VersionInvalid(scheme, text) from None
    return _Ordered(value, _by_operators)


def _rpm(text: str) -> VersionKey:
    from univers.rpm import RpmVersion

    if not text or not (text[0].isalnum() or text[0] == "~"):
        raise VersionInvalid(Scheme.RPM, text)
    return _univers(Scheme.RPM, RpmVersion.from_string, text)


def _maven(text: str) -> VersionKey:
    from univers.maven import Version

    return _univers(Scheme.MAVEN, Version, text)


def _nuget(text: str) -> VersionKey:
    from univers.nuget import Version

    return _univers(Scheme.NUGET, Version.from_string, text)


def _rubygems(text: str) -> VersionKey:
    from univers.gem import GemVersion

    if not GemVersion.is_correct(text):
        raise VersionInvalid(Scheme.RUBYGEMS, text)
    return _univers(Scheme.RUBYGEMS, GemVersion, text)


_PARSERS: dict[Scheme, Callable[[str], VersionKey]] = {
    Scheme.PEP440: _pep440,
    Scheme.SEMVER: _semver,
    Scheme.GO: _go,
    Scheme.DPKG: _dpkg,
    Scheme.APK: _apk,
    Scheme.RPM: _rpm,
    Scheme.MAVEN: _maven,
    Scheme.NUGET: _nuget,
    Scheme.RUBYGEMS: _rubygems,
    Scheme.COMPOSER: _composer,
}

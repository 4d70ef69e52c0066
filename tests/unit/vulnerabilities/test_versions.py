"""Each ecosystem's version order: the examples of its own documentation, a total order on
generated versions, dpkg's answers for Debian, and one typed error for what is no version."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.vulnerabilities.strategies import (
    APKS,
    COMPOSERS,
    DPKGS,
    GOS,
    PEP440S,
    RPMS,
    SEMVERS,
)
from trustyard.errors import Invalid
from trustyard.vulnerabilities.versions import (
    Scheme,
    VersionInvalid,
    compare,
    composer_normalize,
    parse_version,
    scheme_for,
)

# Ascending lists, each from the ecosystem's documentation or tooling.
ASCENDING: dict[Scheme, list[str]] = {
    # PEP 440's own ordering examples
    Scheme.PEP440: [
        "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456",
        "1.0b2", "1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0",
        "1.0+abc.5", "1.0+abc.7", "1.0+5", "1.0.post456.dev34", "1.0.post456", "1.0.15",
        "1.1.dev1", "1!0.1",
    ],
    # semver.org, section 11
    Scheme.SEMVER: [
        "0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
        "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0",
    ],
    # Go modules: pseudo-versions order by time, "-0" branch starts before the release
    Scheme.GO: [
        "0.0.0-20220524220425-1d687d428aca", "0.0.0-20220722155237-a158d28d115b",
        "0.0.0-20220906165146-f3363e06e74c", "0.1.1-0.20221104162952-702349b0e862",
        "v0.1.1", "1.19.8", "1.19.9", "1.20.0-0", "go1.20rc1", "1.20.0-rc.2", "go1.20",
        "v1.20.1", "v2.0.0+incompatible", "v2.1.0",
    ],
    # Debian Policy 5.6.12 and dpkg: "~" before everything, epochs win
    Scheme.DPKG: [
        "1.0~~", "1.0~~a", "1.0~", "1.0", "1.0-0.1", "1.0-1~bpo11+1", "1.0-1", "1.0-1+deb12u1",
        "1.0a", "1.0+dfsg", "1.0.1", "1.2~rc1", "1.2", "2.36.1-8+deb12u1", "10.0", "1:0.1",
        "2:0.0.1",
    ],
    # apk-tools: pre-release suffixes, the release, post suffixes, letters, then numbers
    Scheme.APK: [
        "1.2.3_alpha", "1.2.3_alpha2", "1.2.3_beta1", "1.2.3_pre1", "1.2.3_rc1", "1.2.3",
        "1.2.3-r1", "1.2.3-r10", "1.2.3_cvs1", "1.2.3_git20230101", "1.2.3_hg1", "1.2.3_p1",
        "1.2.3_p2-r3", "1.2.3a", "1.2.3b", "1.2.3.1", "1.2.10", "3.0.8-r3", "3.1.0-r0",
    ],
    # rpmvercmp: epochs first; "~" sorts before and "^" after the end
    Scheme.RPM: [
        "1.0~rc1-1", "1.0-1", "1.0-1.el8", "1.0-1.el8_2", "1.0-2", "1.0^git1-1", "1.0.1-1",
        "1.1-1", "2.0-1", "10.0-1", "1:0.1-1",
    ],
    # Maven's ComparableVersion
    Scheme.MAVEN: [
        "1.0-alpha-1", "1.0-beta-1", "1.0-rc1", "1.0-SNAPSHOT", "1.0", "1.0-sp1", "1.0.1", "1.1",
    ],
    Scheme.NUGET: ["1.0.0-alpha", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1", "2.0.0"],
    Scheme.RUBYGEMS: ["1.0.0.a", "1.0.0.pre", "1.0.0.rc1", "1.0.0", "1.0.0.1", "1.0.1", "1.10"],
    # Composer: dev < alpha < beta < RC < stable < patch, then numbers; a numeric branch
    # (1.x-dev) is 1.9999999.9999999.9999999-dev; a date version is a large number
    Scheme.COMPOSER: [
        "1.0.0-dev", "1.0.0-alpha", "1.0.0-alpha1", "1.0.0a2", "1.0.0-alpha10", "1.0.0-beta",
        "1.0.0-beta1-dev", "1.0.0-b1", "1.0.0-beta.2", "1.0.0-RC1", "1.0.0rc2", "v1.0.0",
        "1.0.0-p1", "1.0.0-patch2", "1.0.0pl10", "1.0.0.1", "1.0.1-dev", "v1.0.1", "1.1",
        "1.10", "1.x-dev", "2.0-alpha1", "2", "2010.01", "2010-01-02", "20100102-203040",
    ],
}  # fmt: skip

EQUAL: list[tuple[Scheme, str, str]] = [
    (Scheme.PEP440, "2.2.0", "2.2"),
    (Scheme.PEP440, "1.0.0a1", "1.0.0-alpha.1"),
    (Scheme.SEMVER, "1.0.0+build.1", "1.0.0+build.2"),
    (Scheme.SEMVER, "v1.2.3", "1.2.3"),
    (Scheme.GO, "v1.2", "1.2.0"),
    (Scheme.GO, "2.0.0+incompatible", "v2.0.0"),
    (Scheme.GO, "go1.21rc2", "1.21.0-rc.2"),
    (Scheme.DPKG, "0:1.0", "1.0"),
    (Scheme.DPKG, "1.0", "1.0-0"),
    (Scheme.DPKG, "1.0a", "1.0a0"),
    (Scheme.DPKG, "1.00", "1.0"),
    (Scheme.RPM, "1.0-1", "1.00-1"),
    (Scheme.RPM, "0:1.0-1", "1.0-1"),
    (Scheme.COMPOSER, "1.0", "1.0.0.0"),
    (Scheme.COMPOSER, "v1.2.3", "1.2.3"),
    (Scheme.COMPOSER, "1.0.0-rc1", "1.0.0RC1"),
    (Scheme.COMPOSER, "1.0.0.RC.1", "1.0.0-RC1"),
    (Scheme.COMPOSER, "1.0.0-p1", "1.0.0-patch1"),
    (Scheme.COMPOSER, "1.0.0pl1", "1.0.0.patch1"),
    (Scheme.COMPOSER, "1.0.0-beta.5+foo", "1.0.0-b5"),
    (Scheme.COMPOSER, "1.0.0-stable", "1.0.0"),
    (Scheme.COMPOSER, "20100102-203040", "v20100102.203040"),
]

INVALID: list[tuple[Scheme, str]] = [
    (Scheme.PEP440, "2019-09-12"),  # PYSEC-2019-125's range
    (Scheme.PEP440, "0.2.0-n653"),  # PYSEC-2021-371's range
    (Scheme.PEP440, ""),
    (Scheme.SEMVER, "1.2"),
    (Scheme.SEMVER, "01.2.3"),
    (Scheme.SEMVER, "1.2.3-"),
    (Scheme.GO, "1.2-rc1"),
    (Scheme.GO, "x1.2.3"),
    (Scheme.DPKG, ""),
    (Scheme.DPKG, "abc"),
    (Scheme.DPKG, "1.0-"),
    (Scheme.DPKG, "1:"),
    (Scheme.DPKG, "1.0 1"),
    (Scheme.DPKG, "1.0:2"),
    (Scheme.APK, "1.2_foo"),
    (Scheme.APK, "1.2-r"),
    (Scheme.APK, "v1.2"),
    (Scheme.RPM, ""),
    (Scheme.RPM, ":1"),
    (Scheme.RPM, "a:1"),
    (Scheme.RUBYGEMS, "1..0"),
    (Scheme.NUGET, "not a version"),
    (Scheme.PEP440, "1" * 300),
    # Composer refuses these (composer/semver's failing normalisations)...
    (Scheme.COMPOSER, ""),
    (Scheme.COMPOSER, "a"),
    (Scheme.COMPOSER, "1.0.0-meh"),
    (Scheme.COMPOSER, "1.0.0.0.0"),
    (Scheme.COMPOSER, "feature-foo"),
    (Scheme.COMPOSER, "1.0.0+foo bar"),
    # ...and a branch is a version Composer never orders against others
    (Scheme.COMPOSER, "dev-main"),
    (Scheme.COMPOSER, "master"),
]


@pytest.mark.parametrize("scheme", list(ASCENDING))
def test_documented_order(scheme: Scheme) -> None:
    versions = ASCENDING[scheme]
    for i, lower in enumerate(versions):
        assert compare(scheme, lower, lower) == 0
        for higher in versions[i + 1 :]:
            assert compare(scheme, lower, higher) == -1, (lower, higher)
            assert compare(scheme, higher, lower) == 1, (higher, lower)


@pytest.mark.parametrize(("scheme", "a", "b"), EQUAL)
def test_equal_versions(scheme: Scheme, a: str, b: str) -> None:
    assert compare(scheme, a, b) == 0
    assert parse_version(scheme, a) == parse_version(scheme, b)


@pytest.mark.parametrize(("scheme", "text"), INVALID)
def test_what_is_no_version_raises_the_typed_error(scheme: Scheme, text: str) -> None:
    with pytest.raises(VersionInvalid) as caught:
        parse_version(scheme, text)
    assert isinstance(caught.value, Invalid)
    assert caught.value.scheme is scheme


def test_ecosystems() -> None:
    assert scheme_for("PyPI") is Scheme.PEP440
    assert scheme_for("Debian:12") is Scheme.DPKG
    assert scheme_for("Alpine:v3.19") is Scheme.APK
    assert scheme_for("Red Hat:enterprise_linux:9::appstream") is Scheme.RPM
    assert scheme_for("npm") is scheme_for("crates.io") is Scheme.SEMVER
    assert scheme_for("Go") is Scheme.GO
    assert scheme_for("Hackage") is None
    assert scheme_for("Packagist") is Scheme.COMPOSER
    assert scheme_for("Packagist:https://packages.drupal.org/8") is Scheme.COMPOSER


# --- generated versions: a total order, and nothing but the typed error ------------------

GENERATED: dict[Scheme, st.SearchStrategy[str]] = {
    Scheme.PEP440: PEP440S,
    Scheme.SEMVER: SEMVERS,
    Scheme.GO: GOS,
    Scheme.DPKG: DPKGS,
    Scheme.APK: APKS,
    Scheme.RPM: RPMS,
    Scheme.NUGET: SEMVERS.filter(lambda v: "+" not in v),
    Scheme.COMPOSER: COMPOSERS,
}  # fmt: skip


def _check_total_order(scheme: Scheme, versions: list[str]) -> None:
    keys = [parse_version(scheme, v) for v in versions]
    for a in keys:
        assert a == a
        assert not a < a
        for b in keys:
            # exactly one of a < b, a == b, b < a
            assert [a < b, a == b, b < a].count(True) == 1, (versions, a, b)
            for c in keys:
                if a < b and b < c:
                    assert a < c, versions
                if a == b and b == c:
                    assert a == c, versions


@pytest.mark.parametrize("scheme", list(GENERATED))
def test_generated_versions_are_totally_ordered(scheme: Scheme) -> None:
    @settings(max_examples=80, deadline=None)
    @given(st.lists(GENERATED[scheme], min_size=2, max_size=5))
    def check(versions: list[str]) -> None:
        _check_total_order(scheme, versions)

    check()


@pytest.mark.parametrize("scheme", list(Scheme))
def test_any_text_is_a_version_or_the_typed_error(scheme: Scheme) -> None:
    @settings(max_examples=100, deadline=None)
    @given(st.text(max_size=30) | st.from_regex(r"[0-9][0-9a-zA-Z.:~^_+-]{0,12}", fullmatch=True))
    def check(text: str) -> None:
        with contextlib.suppress(VersionInvalid):
            parse_version(scheme, text)

    check()


DPKG = shutil.which("dpkg")


@pytest.mark.skipif(DPKG is None, reason="dpkg is the reference for Debian's order")
@settings(max_examples=150, deadline=None)
@given(DPKGS, DPKGS)
def test_debian_order_is_dpkgs(a: str, b: str) -> None:
    assert DPKG is not None
    ours = compare(Scheme.DPKG, a, b)
    relation = {-1: "lt", 0: "eq", 1: "gt"}[ours]
    assert (
        subprocess.run([DPKG, "--compare-versions", a, relation, b], check=False).returncode == 0
    ), (
        a,
        relation,
        b,
    )


# --- Packagist: Composer's normalisation, and PHP's version_compare on its result -----------

# composer/semver's own normalisation tests (VersionParserTest::successfulNormalizedVersions,
# with Composer 2's answer for dev-master, which stays a branch).
NORMALIZED = {
    "1.0.0": "1.0.0.0",
    "1.2.3.4": "1.2.3.4",
    "1.0.0RC1dev": "1.0.0.0-RC1-dev",
    "1.0.0-rC15-dev": "1.0.0.0-RC15-dev",
    "1.0.0.RC.15-dev": "1.0.0.0-RC15-dev",
    "1.0.0-rc1": "1.0.0.0-RC1",
    "1.0.0.pl3-dev": "1.0.0.0-patch3-dev",
    "1.0-dev": "1.0.0.0-dev",
    "0": "0.0.0.0",
    "10.4.13-beta": "10.4.13.0-beta",
    "10.4.13beta2": "10.4.13.0-beta2",
    "10.4.13beta.2": "10.4.13.0-beta2",
    "10.4.13-b": "10.4.13.0-beta",
    "10.4.13-b5": "10.4.13.0-beta5",
    "v1.0.0": "1.0.0.0",
    "2010.01": "2010.01.0.0",
    "2010.01.02": "2010.01.02.0",
    "2010.1.555": "2010.1.555.0",
    "2010.10.200": "2010.10.200.0",
    "v20100102": "20100102",
    "2010-01-02": "2010.01.02",
    "2010-01-02.5": "2010.01.02.5",
    "20100102-203040": "20100102.203040",
    "20150920.0.0": "20150920.0.0",
    "20100102203040-10": "20100102203040.10",
    "20100102-203040-p1": "20100102.203040-patch1",
    "1.x-dev": "1.9999999.9999999.9999999-dev",
    "dev-master": "dev-master",
    "master": "dev-master",
    "dev-feature-foo": "dev-feature-foo",
    "DEV-FOOBAR": "dev-FOOBAR",
    "dev-feature/foo": "dev-feature/foo",
    "dev-master as 1.0.0": "dev-master",
    "1.0.0-beta.5+foo": "1.0.0.0-beta5",
    "1.0.0+foo": "1.0.0.0",
    "1.0.0-alpha.3.1+foo": "1.0.0.0-alpha3.1",
    "1.0.0-alpha2.1+foo": "1.0.0.0-alpha2.1",
    "1.0.0-alpha-2.1-3+foo": "1.0.0.0-alpha2.1-3",
    "1.0.0+foo as 2.0": "1.0.0.0",
    "1.0@dev": "1.0.0.0",
}


@pytest.mark.parametrize(("version", "normal"), list(NORMALIZED.items()))
def test_composer_normalisation(version: str, normal: str) -> None:
    assert composer_normalize(version) == normal


def test_composer_is_not_semver() -> None:
    # univers' Composer order (SemVer's ASCII rule) put RC1 before alpha1
    assert compare(Scheme.COMPOSER, "1.0.0-RC1", "1.0.0-alpha1") == 1
    assert compare(Scheme.COMPOSER, "5.4.0-RC1", "v5.4.0") == -1
    assert compare(Scheme.COMPOSER, "1.0.0-patch1", "1.0.0") == 1  # SemVer: a pre-release


_PHP_FORMS = [
    ("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2), ("RC", 3), ("rc", 3),
    ("#", 4), ("pl", 5), ("p", 5),
]  # fmt: skip


def _php_form(part: str) -> int:
    return next((rank for prefix, rank in _PHP_FORMS if part.startswith(prefix)), -1)


def _php_canonical(version: str) -> str:
    """php_canonicalize_version: [-_+] and other non-alphanumerics become one dot, and a dot
    goes between a digit and a non-digit (the dot itself is neither)."""

    def digit(c: str) -> bool:
        return c in "0123456789"

    def non_digit(c: str) -> bool:
        return not digit(c) and c != "."

    out = [version[0]]
    for previous, char in itertools.pairwise(version):
        if char in "-_+":
            if out[-1] != ".":
                out.append(".")
        elif (non_digit(previous) and digit(char)) or (digit(previous) and non_digit(char)):
            if out[-1] != ".":
                out.append(".")
            out.append(char)
        elif not (char.isascii() and char.isalnum()):
            if out[-1] != ".":
                out.append(".")
        else:
            out.append(char)
    return "".join(out)


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _php_version_compare(a: str, b: str) -> int:
    """PHP's version_compare, written from ext/standard/versioning.c on its own."""
    pa = (a if a.startswith("#") else _php_canonical(a)).split(".")
    pb = (b if b.startswith("#") else _php_canonical(b)).split(".")
    i = 0
    while i < len(pa) and i < len(pb):
        x, y = pa[i], pb[i]
        if x[0].isdigit() and y[0].isdigit():
            result = _sign(int(x) - int(y))
        elif not x[0].isdigit() and not y[0].isdigit():
            result = _sign(_php_form(x) - _php_form(y))
        elif x[0].isdigit():
            result = _sign(_php_form("#N#") - _php_form(y))
        else:
            result = _sign(_php_form(x) - _php_form("#N#"))
        if result:
            return result
        i += 1
    if i < len(pa):
        return 1 if pa[i][0].isdigit() else _php_version_compare(".".join(pa[i:]), "#N#")
    if i < len(pb):
        return -1 if pb[i][0].isdigit() else _php_version_compare("#N#", ".".join(pb[i:]))
    return 0


@settings(max_examples=100, deadline=None)
@given(COMPOSERS, COMPOSERS)
def test_composer_order_is_version_compare_on_the_normal_form(a: str, b: str) -> None:
    expected = _php_version_compare(composer_normalize(a), composer_normalize(b))
    assert compare(Scheme.COMPOSER, a, b) == expected, (
        composer_normalize(a),
        composer_normalize(b),
    )


@settings(max_examples=100, deadline=None)
@given(COMPOSERS)
def test_composer_normal_form_is_stable(version: str) -> None:
    normal = composer_normalize(version)
    if normal.partition("-")[0].count(".") == 3:  # four numbers: what all but dates give
        assert composer_normalize(normal) == normal
        assert parse_version(Scheme.COMPOSER, normal) == parse_version(Scheme.COMPOSER, version)


def test_composer_dates_keep_their_length() -> None:
    # Composer's own quirk, kept: a date's normal form read again is a classic version
    assert composer_normalize("2010-01-02") == "2010.01.02"
    assert composer_normalize("2010.01.02") == "2010.01.02.0"
    assert compare(Scheme.COMPOSER, "2010-01-02", "2010.01.02") == -1

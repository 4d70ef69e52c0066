"""OSV range semantics: explicit versions, sorted events, introduced "0", fixed,
last_affected, limit, several ranges, GIT ignored; the version to upgrade to."""

from __future__ import annotations

import random
from functools import cmp_to_key
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.vulnerabilities.strategies import APKS, COMPOSERS, DPKGS, PEP440S
from trustyard.vulnerabilities.matching import AffectedMatcher, package_key
from trustyard.vulnerabilities.osv import parse_record
from trustyard.vulnerabilities.versions import Scheme, compare


def entry(
    ranges: list[dict[str, Any]],
    versions: list[str] | None = None,
    ecosystem: str = "npm",
    name: str = "pkg",
) -> AffectedMatcher:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}, "ranges": ranges}
    if versions is not None:
        affected["versions"] = versions
    record = parse_record(
        {"id": "TEST-1", "modified": "2024-01-01T00:00:00Z", "affected": [affected]}
    )
    return AffectedMatcher(record.affected[0])


def eco(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    return {"type": kind, "events": [{k: v} for k, v in events]}


def test_introduced_zero_and_fixed() -> None:
    m = entry([eco(("introduced", "0"), ("fixed", "4.17.12"))])
    assert m.affects("0.0.1")
    assert m.affects("4.17.11")
    assert m.affects("4.17.12-rc.1")  # a pre-release of the fix is before it
    assert not m.affects("4.17.12")
    assert not m.affects("5.0.0")
    assert m.fixed_in("4.17.11") == "4.17.12"


def test_last_affected_is_inclusive() -> None:
    m = entry([eco(("introduced", "1.0.0"), ("last_affected", "1.2.0"))])
    assert not m.affects("0.9.0")
    assert m.affects("1.0.0")
    assert m.affects("1.2.0")
    assert not m.affects("1.2.1")
    assert m.fixed_in("1.2.0") is None  # no fixed version is known


def test_limit_bounds_the_range() -> None:
    m = entry([eco(("introduced", "0"), ("limit", "2.0.0"))])
    assert m.affects("1.9.9")
    assert not m.affects("2.0.0")
    assert not m.affects("3.0.0")
    star = entry([eco(("introduced", "1.0.0"), ("limit", "*"))])
    assert star.affects("9.0.0")


def test_several_intervals_and_ranges() -> None:
    m = entry(
        [
            eco(
                ("introduced", "1.0.0"),
                ("fixed", "1.0.5"),
                ("introduced", "2.0.0"),
                ("fixed", "2.0.3"),
            ),
            eco(("introduced", "3.0.0"), ("fixed", "3.1.0")),
        ]
    )
    affected = {v for v in ["0.9.0", "1.0.0", "1.0.4", "1.0.5", "1.5.0", "2.0.0", "2.0.2", "2.0.3",
                            "2.9.0", "3.0.0", "3.0.9", "3.1.0"] if m.affects(v)}  # fmt: skip
    assert affected == {"1.0.0", "1.0.4", "2.0.0", "2.0.2", "3.0.0", "3.0.9"}
    assert m.fixed_in("1.0.4") == "1.0.5"
    assert m.fixed_in("2.0.2") == "2.0.3"
    assert m.fixed_in("3.0.9") == "3.1.0"


def test_events_are_sorted_first() -> None:
    # PYSEC-2019-10's shape: introduced 2.1 ... introduced 2.2 ... introduced 1.11, unsorted.
    m = entry(
        [eco(("introduced", "2.1"), ("fixed", "2.1.10"), ("introduced", "2.2"), ("fixed", "2.2.2"),
             ("introduced", "1.11"), ("fixed", "1.11.21"))],
        ecosystem="PyPI",
    )  # fmt: skip
    assert m.affects("2.2.0")
    assert m.affects("1.11.20")
    assert not m.affects("1.11.21")
    assert not m.affects("2.1.10")
    assert not m.affects("2.2.2")
    assert m.fixed_in("2.2") == "2.2.2"


def test_introduced_and_fixed_at_one_version_affect_nothing() -> None:
    m = entry([eco(("fixed", "1.0.0"), ("introduced", "1.0.0"))])
    assert not m.affects("1.0.0")
    assert not m.affects("2.0.0")


def test_explicit_versions_by_the_ecosystems_equality() -> None:
    m = entry([], versions=["2.2", "2.1.3"], ecosystem="PyPI")
    assert m.affects("2.2.0")  # PEP 440: 2.2.0 == 2.2
    assert m.affects("2.1.3")
    assert not m.affects("2.2.1")
    assert m.fixed_in("2.2") is None


def test_explicit_versions_or_ranges() -> None:
    m = entry([eco(("introduced", "0"), ("fixed", "1.0"))], versions=["3.0"], ecosystem="PyPI")
    assert m.affects("0.5")  # by the range
    assert m.affects("3.0")  # by the list
    assert not m.affects("2.0")


def test_git_ranges_are_ignored_for_packages() -> None:
    git = {"type": "GIT", "repo": "https://example.invalid/r", "events": [{"introduced": "0"}]}
    m = entry([git])
    assert not m.affects("1.0.0")


def test_go_semver_ranges() -> None:
    m = entry(
        [eco(("introduced", "0"), ("fixed", "1.19.9"), ("introduced", "1.20.0-0"),
             ("fixed", "1.20.4"), kind="SEMVER")],
        ecosystem="Go",
        name="stdlib",
    )  # fmt: skip
    assert m.affects("1.19.8")
    assert m.affects("go1.19.8")  # a toolchain's own name for it
    assert m.affects("v1.20.0")
    assert m.affects("1.20.0-rc.1")  # the -0 branch start is below every pre-release
    assert not m.affects("1.19.9")
    assert not m.affects("1.20.4")
    assert m.fixed_in("1.20.1") == "1.20.4"


def test_a_range_with_an_unreadable_version_is_left_out_with_a_warning() -> None:
    # PYSEC-2019-125: fixed "2019-09-12" is no PEP 440 version.
    m = entry(
        [eco(("introduced", "0"), ("fixed", "2019-09-12"))], versions=["0.8.0"], ecosystem="PyPI"
    )
    assert not m.affects("0.9.0")
    assert m.affects("0.8.0")  # the explicit list still answers
    assert m.warnings
    assert "2019-09-12" in m.warnings[0]


def test_an_ecosystem_without_an_order_matches_its_explicit_versions_only() -> None:
    m = entry([eco(("introduced", "0"), ("fixed", "1.0"))], versions=["0.5"], ecosystem="Hackage")
    assert m.affects("0.5")
    assert not m.affects("0.6")
    assert m.warnings


def test_packagist_ranges_in_composers_order() -> None:
    m = entry(
        [eco(("introduced", "2.0.0"), ("fixed", "2.5.0-RC1"))], ecosystem="Packagist", name="a/b"
    )
    assert m.affects("v2.5.0-alpha1")  # alpha before RC (SemVer's ASCII order said after)
    assert m.affects("2.5.0-beta2")
    assert m.affects("2.4.9-p1")
    assert not m.affects("2.5.0-RC1")
    assert not m.affects("v2.5.0")
    assert not m.affects("2.0.0-RC3")
    assert not m.affects("dev-main")  # a branch has no place in a range
    assert m.fixed_in("2.4.9") == "2.5.0-RC1"


def test_an_unreadable_component_version_matches_nothing_by_range() -> None:
    m = entry([eco(("introduced", "0"))])
    assert not m.affects("not-a-version")


def test_package_keys() -> None:
    assert package_key("PyPI", "PyYAML") == package_key("PyPI", "pyyaml")
    assert package_key("PyPI", "zope.interface") == package_key("PyPI", "Zope_Interface")
    assert package_key("npm", "Lodash") != package_key("npm", "lodash")
    assert package_key("Debian:12", "openssl") != package_key("Debian:11", "openssl")


# --- properties over generated ranges -----------------------------------------------------

KINDS = ["introduced", "fixed", "last_affected", "limit"]


def reference(events: list[tuple[str, int]], v: int) -> bool:
    """OSV's evaluation on plain integers."""
    limits = [n for kind, n in events if kind == "limit"]
    if limits and not any(v < n for n in limits):
        return False
    order = {"introduced": 0, "last_affected": 1, "fixed": 2}
    affected = False
    for kind, n in sorted(
        ((k, n) for k, n in events if k != "limit"), key=lambda e: (e[1], order[e[0]])
    ):
        if kind == "introduced" and v >= n:
            affected = True
        elif (kind == "fixed" and v >= n) or (kind == "last_affected" and v > n):
            affected = False
    return affected


def semver(n: int) -> str:
    return f"{n // 10}.{n % 10}.0"


EVENTS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 40)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(EVENTS, st.randoms(use_true_random=False))
def test_matching_follows_the_evaluation_in_any_event_order(
    events: list[tuple[str, int]], rnd: random.Random
) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    m = entry([eco(*((k, semver(n)) for k, n in events))])
    s = entry([eco(*((k, semver(n)) for k, n in shuffled))])
    for v in range(45):
        expected = reference(events, v)
        assert m.affects(semver(v)) is expected, (events, v)
        assert s.affects(semver(v)) is expected, (shuffled, v)
        fix = m.fixed_in(semver(v))
        if expected and fix is not None:
            assert not m.affects(fix) or fix != semver(v)
            assert tuple(map(int, fix.split("."))) > tuple(map(int, semver(v).split(".")))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 45))
def test_introduced_then_fixed(a: int, b: int, v: int) -> None:
    m = entry([eco(("introduced", semver(a)), ("fixed", semver(b)))])
    # sorted, a fix below the introduction comes first and leaves it open upwards
    expected = a <= v < b if a <= b else a <= v
    assert m.affects(semver(v)) is expected
    if expected:
        assert m.fixed_in(semver(v)) == (semver(b) if b > v else None)


@pytest.mark.parametrize(
    "ecosystem", ["PyPI", "npm", "Go", "Debian:12", "Alpine:v3.19", "Red Hat", "Packagist"]
)
def test_introduced_zero_is_below_every_version(ecosystem: str) -> None:
    low = {"PyPI": "0.0.0.dev0", "npm": "0.0.0-0", "Go": "0.0.0-0", "Debian:12": "0~~",
           "Alpine:v3.19": "0_alpha", "Red Hat": "0~0-0",
           "Packagist": "0-dev"}[ecosystem]  # fmt: skip
    m = entry([eco(("introduced", "0"))], ecosystem=ecosystem)
    assert m.affects(low)


# Versions of the debian-minbase test image (Debian 12): a Debian record names the fix that
# Debian shipped, often a backport below the upstream release that fixed it.
DEBIAN = [
    # (package, fixed in Debian 12, installed, affected)
    ("tar", "1.34+dfsg-1.2+deb12u1", "1.34+dfsg-1.2+deb12u1", False),  # the backport: fixed
    ("tar", "1.34+dfsg-1.2+deb12u1", "1.34+dfsg-1.2", True),  # before the backport
    ("tar", "1.35+dfsg-1", "1.34+dfsg-1.2+deb12u1", True),  # only the upstream release fixes
    ("glibc", "2.36-9+deb12u4", "2.36-9+deb12u14", False),  # u14 is after u4
    ("glibc", "2.36-9+deb12u14", "2.36-9+deb12u13", True),
    ("zlib", "1.3.1-1", "1:1.2.13.dfsg-1", False),  # the epoch outweighs a higher upstream
    ("zlib", "1:1.2.13.dfsg-1+deb12u1", "1:1.2.13.dfsg-1", True),
    ("systemd", "252.39-1~deb12u1", "252.39-1~deb12u2", False),
    ("systemd", "252.39-1", "252.39-1~deb12u2", True),  # "~": a backport sorts before
]


@pytest.mark.parametrize(("package", "fixed", "installed", "affected"), DEBIAN)
def test_debian_backported_fixes(package: str, fixed: str, installed: str, affected: bool) -> None:
    m = entry([eco(("introduced", "0"), ("fixed", fixed))], ecosystem="Debian:12", name=package)
    assert m.affects(installed) is affected
    assert m.fixed_in(installed) == (fixed if affected else None)


def _reference_by_compare(scheme: Scheme, events: list[tuple[str, str]], v: str) -> bool:
    """The evaluation again, on `compare` alone (introduced "0" lowest)."""

    def cmp(a: str, b: str) -> int:
        return compare(scheme, a, b)

    limits = [n for kind, n in events if kind == "limit"]
    if limits and not any(cmp(v, n) < 0 for n in limits):
        return False
    order = {"introduced": 0, "last_affected": 1, "fixed": 2}
    rest = [(k, n) for k, n in events if k != "limit"]
    lowest = [(k, n) for k, n in rest if k == "introduced" and n == "0"]
    others = sorted(
        (e for e in rest if e not in lowest),
        key=cmp_to_key(lambda a, b: cmp(a[1], b[1]) or order[a[0]] - order[b[0]]),
    )
    affected = False
    for kind, n in lowest + others:
        if kind == "introduced" and (n == "0" or cmp(v, n) >= 0):
            affected = True
        elif (kind == "fixed" and cmp(v, n) >= 0) or (kind == "last_affected" and cmp(v, n) > 0):
            affected = False
    return affected


ORDERED = {
    "PyPI": (Scheme.PEP440, PEP440S),
    "Debian:12": (Scheme.DPKG, DPKGS),
    "Alpine:v3.19": (Scheme.APK, APKS),
    "Packagist": (Scheme.COMPOSER, COMPOSERS),
}


@pytest.mark.parametrize("ecosystem", list(ORDERED))
def test_matching_in_each_order_follows_the_evaluation(ecosystem: str) -> None:
    scheme, versions = ORDERED[ecosystem]
    events_of = st.builds(
        lambda zero, rest: [("introduced", "0")] * zero + rest,
        st.booleans(),
        st.lists(st.tuples(st.sampled_from(KINDS), versions), max_size=6),
    ).filter(bool)

    @settings(max_examples=50, deadline=None)
    @given(events_of, st.lists(versions, min_size=1, max_size=6))
    def check(events: list[tuple[str, str]], probes: list[str]) -> None:
        m = entry([eco(*events)], ecosystem=ecosystem)
        for v in probes + [n for _, n in events if n != "0"]:
            assert m.affects(v) is _reference_by_compare(scheme, events, v), (events, v)

    check()

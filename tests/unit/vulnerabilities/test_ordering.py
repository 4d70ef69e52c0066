"""vulnerabilities/ordering.py: the policy engine's VersionOrder over the BOM's ecosystem
names (and OSV's, for rules written by hand), with None for what it cannot order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.vulnerabilities.strategies import DPKGS, GOS, PEP440S, SEMVERS
from trustyard.vulnerabilities.ordering import component_version_order, scheme_of
from trustyard.vulnerabilities.versions import Scheme


@pytest.mark.parametrize(
    ("ecosystem", "a", "b", "order"),
    [
        # deb: epoch, upstream, revision; `~` sorts before everything
        ("deb", "3.0.11-1~deb12u2", "3.0.11-1", -1),
        ("deb", "1:1.0-1", "2.0-1", 1),
        ("deb", "2.36-9+deb12u4", "2.36-9", 1),
        ("deb", "1.0", "1.0-0", 0),
        ("Debian:12", "1.0~rc1", "1.0", -1),
        ("ubuntu", "2.0", "10.0", -1),
        # PyPI: PEP 440
        ("pypi", "4.2rc1", "4.2", -1),
        ("pypi", "4.10", "4.9", 1),
        ("PyPI", "1.0.post1", "1.0", 1),
        ("pypi", "1.0", "1.0.0", 0),
        ("pypi", "2!0.1", "9.9", 1),
        # npm: SemVer 2.0 precedence
        ("npm", "1.0.0-alpha", "1.0.0-alpha.1", -1),
        ("npm", "1.0.0-beta.2", "1.0.0-beta.11", -1),
        ("npm", "1.0.0-rc.1", "1.0.0", -1),
        ("npm", "v1.2.3", "1.2.3", 0),
        ("npm", "1.2.3+build.5", "1.2.3", 0),
        # Go: modules with `v`, shorthands, pseudo-versions, the toolchain
        ("golang", "v0.17.0", "v0.23.0", -1),
        ("golang", "v1.2", "v1.2.0", 0),
        ("golang", "v0.0.0-20230101000000-abcdef123456", "v0.0.1", -1),
        ("golang", "v2.0.0+incompatible", "v2.0.0", 0),
        ("golang", "go1.21.3", "go1.21.10", -1),
        ("golang", "go1.21rc2", "1.21.0", -1),
        ("Go", "go1.22", "v1.21.9", 1),
        # the other ecosystems of the BOM
        ("apk", "1.2.3-r1", "1.2.3_rc1-r0", 1),
        ("rpm", "1:3.0.7-24.el9", "3.0.7-25.el9", 1),
        ("cargo", "1.0.0", "1.0.1", -1),
        ("gem", "1.0.0.pre", "1.0.0", -1),
        ("maven", "1.0-SNAPSHOT", "1.0", -1),
        ("nuget", "1.0.0-beta", "1.0.0", -1),
        ("composer", "1.0.0-RC1", "1.0.0-beta2", 1),
    ],
)
def test_each_ecosystem_in_its_own_order(ecosystem: str, a: str, b: str, order: int) -> None:
    assert component_version_order(ecosystem, a, b) == order
    assert component_version_order(ecosystem, b, a) == -order


@pytest.mark.parametrize(
    ("ecosystem", "a", "b"),
    [
        ("binary", "1.0", "1.0"),  # a file no package owns: no order
        ("conan", "1.0", "2.0"),
        ("", "1", "2"),
        ("npm", "2", "1.0.0"),  # SemVer has no shorthand
        ("pypi", "four", "4"),
        ("deb", "abc", "1.0"),
        ("golang", "latest", "v1.0.0"),
        ("pypi", "1" * 300, "1"),  # longer than any version
    ],
)
def test_none_when_it_cannot_order(ecosystem: str, a: str, b: str) -> None:
    assert component_version_order(ecosystem, a, b) is None


@pytest.mark.parametrize(
    ("name", "scheme"),
    [("pypi", Scheme.PEP440), ("npm", Scheme.SEMVER), ("golang", Scheme.GO), ("go", Scheme.GO),
     ("deb", Scheme.DPKG), ("debian", Scheme.DPKG), ("apk", Scheme.APK), ("rpm", Scheme.RPM),
     ("cargo", Scheme.SEMVER), ("gem", Scheme.RUBYGEMS), ("maven", Scheme.MAVEN),
     ("nuget", Scheme.NUGET), ("composer", Scheme.COMPOSER), ("Alpine:v3.19", Scheme.APK)],
)  # fmt: skip
def test_bom_and_osv_names(name: str, scheme: Scheme) -> None:
    assert scheme_of(name) is scheme


@pytest.mark.parametrize(
    ("ecosystem", "versions"),
    [("deb", DPKGS), ("pypi", PEP440S), ("npm", SEMVERS), ("golang", GOS)],
)
def test_a_total_order(ecosystem: str, versions: st.SearchStrategy[str]) -> None:
    @given(versions, versions, versions)
    def antisymmetric_and_transitive(a: str, b: str, c: str) -> None:
        ab = component_version_order(ecosystem, a, b)
        assert ab is not None
        assert component_version_order(ecosystem, b, a) == -ab
        bc = component_version_order(ecosystem, b, c)
        if ab <= 0 and bc is not None and bc <= 0:
            assert component_version_order(ecosystem, a, c) in (-1, 0)

    antisymmetric_and_transitive()

"""Which advisory package a BOM component is looked up as (components.py): language packages
by their own name, OS packages through their source package and version under the
distribution's release, OS-installed language packages not at all (their OS package is).

The components are BOM JSON as the scanner writes it; the OS package versions are real ones
(Debian 12's util-linux, bash binNMUs, Alpine 3.19's openssl, Rocky 9's openssl-libs)."""

from __future__ import annotations

from typing import Any

import pytest

from trustyard.scanning.bom import OWNED_BY_OS_PACKAGE
from trustyard.vulnerabilities.components import (
    OWNED_BY_OS,
    Target,
    Via,
    distro_ecosystem,
    reason_untargeted,
    target_of,
)

DEBIAN_12 = {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"}
ALPINE = {"id": "alpine", "version_id": "3.19.1", "pretty_name": "Alpine Linux v3.19"}
ROCKY = {"id": "rocky", "version_id": "9.3", "pretty_name": "Rocky Linux 9.3 (Blue Onyx)"}


def component(ecosystem: str, name: str, version: str, **properties: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ecosystem": ecosystem,
        "name": name,
        "version": version,
        "purl": f"pkg:{ecosystem}/{name}@{version}",
        "locations": ["x"],
        "detector": ecosystem,
    }
    if properties:
        data["properties"] = properties
    return data


# --- distributions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distro", "ecosystem"),
    [
        (DEBIAN_12, "Debian:12"),
        ({"id": "debian", "version_id": "11"}, "Debian:11"),
        # testing and sid have no VERSION_ID, and OSV no release for them
        ({"id": "debian", "version_id": "", "pretty_name": "Debian GNU/Linux trixie/sid"}, None),
        ({"id": "ubuntu", "version_id": "22.04"}, "Ubuntu:22.04:LTS"),
        ({"id": "ubuntu", "version_id": "24.04"}, "Ubuntu:24.04:LTS"),
        ({"id": "ubuntu", "version_id": "23.10"}, "Ubuntu:23.10"),
        ({"id": "ubuntu", "version_id": "23.04"}, "Ubuntu:23.04"),  # an odd year's April
        (
            {"id": "ubuntu", "version_id": "", "pretty_name": "Ubuntu 20.04.6 LTS"},
            "Ubuntu:20.04:LTS",
        ),
        (ALPINE, "Alpine:v3.19"),
        ({"id": "alpine", "version_id": "3.18"}, "Alpine:v3.18"),
        ({"id": "alpine", "version_id": "3.21.0_alpha20240807"}, None),  # edge
        ({"id": "alpine", "version_id": "3"}, None),
        (ROCKY, "Rocky Linux:9"),
        ({"id": "almalinux", "version_id": "8.9"}, "AlmaLinux:8"),
        ({"id": "mageia", "version_id": "9"}, "Mageia:9"),
        ({"id": "opensuse-leap", "version_id": "15.5"}, "openSUSE:Leap 15.5"),
        ({"id": "opensuse-tumbleweed", "version_id": "20240801"}, "openSUSE:Tumbleweed"),
        (
            {
                "id": "sles",
                "version_id": "15.5",
                "pretty_name": "SUSE Linux Enterprise Server 15 SP5",
            },
            "SUSE:Linux Enterprise Server 15 SP5",
        ),
        (
            {"id": "openeuler", "version_id": "22.03", "pretty_name": "openEuler 22.03 (LTS-SP1)"},
            "openEuler:22.03-LTS-SP1",
        ),
        ({"id": "wolfi", "version_id": "20230201"}, "Wolfi"),
        ({"id": "chainguard", "version_id": ""}, "Chainguard"),
        ({"id": "rhel", "version_id": "9.3"}, None),  # per product stream (CPE): not here
        ({"id": "arch", "version_id": ""}, None),
        ({"id": "debian"}, None),
        (None, None),
    ],
)
def test_distro_ecosystem(distro: dict[str, str] | None, ecosystem: str | None) -> None:
    assert distro_ecosystem(distro) == ecosystem


# --- Debian: the source package and its version ------------------------------------------------


def test_a_binary_package_is_its_source_package_at_the_binary_version() -> None:
    # dpkg writes `Source: glibc` (no version) when the versions are equal
    libc6 = component("deb", "libc6", "2.36-9+deb12u14", source="glibc")
    assert target_of(libc6, DEBIAN_12) == Target(
        "Debian:12", "glibc", "2.36-9+deb12u14", Via.SOURCE
    )


def test_a_binary_epoch_that_the_source_has_not_is_left_out() -> None:
    # bsdutils carries an epoch of its own; util-linux (the source) has none
    bsdutils = component(
        "deb",
        "bsdutils",
        "1:2.38.1-5+deb12u3",
        source="util-linux",
        source_version="2.38.1-5+deb12u3",
    )
    assert target_of(bsdutils, DEBIAN_12) == Target(
        "Debian:12", "util-linux", "2.38.1-5+deb12u3", Via.SOURCE
    )


def test_a_binnmu_is_matched_at_its_source_version() -> None:
    bash = component("deb", "bash", "5.2.15-2+b13", source="bash", source_version="5.2.15-2")
    assert target_of(bash, DEBIAN_12) == Target("Debian:12", "bash", "5.2.15-2", Via.SOURCE)
    # a BOM without the source version (an older scanner): the `+bN` is not the source's
    bare = component("deb", "bash", "5.2.15-2+b13")
    assert target_of(bare, DEBIAN_12) == Target("Debian:12", "bash", "5.2.15-2", Via.PACKAGE)
    libcap2 = component("deb", "libcap2", "1:2.66-4+deb12u3+b1", source="libcap2")
    assert target_of(libcap2, DEBIAN_12) == Target(
        "Debian:12", "libcap2", "1:2.66-4+deb12u3", Via.SOURCE
    )


def test_a_package_that_is_its_own_source_keeps_name_version_and_epoch() -> None:
    tzdata = component("deb", "tzdata", "2026b-0+deb12u1")
    assert target_of(tzdata, DEBIAN_12) == Target(
        "Debian:12", "tzdata", "2026b-0+deb12u1", Via.PACKAGE
    )
    diffutils = component("deb", "diffutils", "1:3.8-4")
    assert target_of(diffutils, DEBIAN_12) == Target(
        "Debian:12", "diffutils", "1:3.8-4", Via.PACKAGE
    )


def test_ubuntu_packages_are_matched_under_the_lts_release() -> None:
    ubuntu = {"id": "ubuntu", "version_id": "22.04", "pretty_name": "Ubuntu 22.04.4 LTS"}
    libssl3 = component("deb", "libssl3", "3.0.2-0ubuntu1.15", source="openssl")
    assert target_of(libssl3, ubuntu) == Target(
        "Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.15", Via.SOURCE
    )


# --- Alpine and RPM ----------------------------------------------------------------------------


def test_an_apk_is_its_origin_at_the_package_version() -> None:
    libssl3 = component("apk", "libssl3", "3.1.4-r5", source="openssl")
    assert target_of(libssl3, ALPINE) == Target("Alpine:v3.19", "openssl", "3.1.4-r5", Via.SOURCE)
    musl = component("apk", "musl", "1.2.4_git20230717-r4")
    assert target_of(musl, ALPINE) == Target(
        "Alpine:v3.19", "musl", "1.2.4_git20230717-r4", Via.PACKAGE
    )


def test_an_rpm_is_its_source_rpm_with_the_binary_epoch() -> None:
    libs = component("rpm", "openssl-libs", "1:3.0.7-24.el9", source="openssl-3.0.7-24.el9.src.rpm")
    assert target_of(libs, ROCKY) == Target(
        "Rocky Linux:9", "openssl", "1:3.0.7-24.el9", Via.SOURCE
    )
    # a subpackage with a version of its own is looked up at its source RPM's version
    errno = component("rpm", "perl-Errno", "1.30-481.el9", source="perl-5.32.1-481.el9.src.rpm")
    assert target_of(errno, ROCKY) == Target("Rocky Linux:9", "perl", "5.32.1-481.el9", Via.SOURCE)
    # an epoch only in the purl (older BOMs)
    bare = component("rpm", "openssl-libs", "3.0.7-24.el9", source="openssl-3.0.7-24.el9.src.rpm")
    bare["purl"] = "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&epoch=1"
    assert target_of(bare, ROCKY) == Target(
        "Rocky Linux:9", "openssl", "1:3.0.7-24.el9", Via.SOURCE
    )
    # a source RPM name that does not parse: the binary package itself
    odd = component("rpm", "tool", "2-1", source="tool.src.rpm")
    assert target_of(odd, ROCKY) == Target("Rocky Linux:9", "tool", "2-1", Via.PACKAGE)


def test_an_os_package_of_another_family_than_the_distribution_is_not_matched() -> None:
    deb_on_alpine = component("deb", "bash", "5.2.15-2")
    assert target_of(deb_on_alpine, ALPINE) is None
    assert (
        reason_untargeted(deb_on_alpine, ALPINE)
        == "a deb package on alpine 3.19.1: not one of its packages"
    )
    assert target_of(component("apk", "musl", "1.2.4-r2"), DEBIAN_12) is None
    assert target_of(component("rpm", "bash", "5.1.8-6.el9"), DEBIAN_12) is None


def test_os_packages_of_an_uncovered_or_unknown_distribution() -> None:
    bash = component("deb", "bash", "5.2.15-2")
    sid = {"id": "debian", "version_id": "", "pretty_name": "Debian GNU/Linux trixie/sid"}
    assert target_of(bash, sid) is None
    assert reason_untargeted(bash, sid) == "no vulnerability database covers debian"
    assert target_of(bash, None) is None
    assert reason_untargeted(bash, None) == "the image's distribution is unknown"


# --- language packages --------------------------------------------------------------------------


def test_language_packages_are_matched_under_their_own_ecosystem() -> None:
    assert target_of(component("pypi", "PyYAML", "5.3"), DEBIAN_12) == Target(
        "PyPI", "PyYAML", "5.3", Via.PACKAGE
    )
    assert target_of(component("golang", "stdlib", "go1.19.8"), None) == Target(
        "Go", "stdlib", "go1.19.8", Via.PACKAGE
    )
    assert target_of(component("gem", "rack", "2.2.3"), None) == Target(
        "RubyGems", "rack", "2.2.3", Via.PACKAGE
    )


def test_a_language_package_an_os_package_installed_is_left_to_the_os_package() -> None:
    assert OWNED_BY_OS == OWNED_BY_OS_PACKAGE  # the scanner's property, one spelling
    for ecosystem in ("pypi", "npm", "gem", "maven", "golang", "cargo", "nuget", "composer"):
        owned = component(ecosystem, "pkg", "6.0", **{OWNED_BY_OS_PACKAGE: "true"})
        assert target_of(owned, DEBIAN_12) is None
        assert reason_untargeted(owned, DEBIAN_12) == (
            "installed by an OS package: matched through that package"
        )


def test_fingerprints_are_matched_by_upstream_version_under_the_distribution() -> None:
    openssl = component("binary", "openssl", "3.0.11")
    assert target_of(openssl, DEBIAN_12) == Target(
        "Debian:12", "openssl", "3.0.11", Via.FINGERPRINT
    )
    assert target_of(openssl, None) is None


def test_what_no_database_covers() -> None:
    assert target_of(component("conan", "zlib", "1.3"), DEBIAN_12) is None
    assert reason_untargeted(component("conan", "zlib", "1.3"), DEBIAN_12) == (
        "no vulnerability database covers the 'conan' ecosystem"
    )
    assert target_of(component("pypi", "x", ""), DEBIAN_12) is None
    assert reason_untargeted(component("pypi", "x", ""), DEBIAN_12) == "no name or version"

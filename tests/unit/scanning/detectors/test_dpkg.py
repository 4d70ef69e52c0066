"""The dpkg detector: Debian's status database, the distroless status.d layout, the files
each package owns and the licences its copyright file declares."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.images import image_info, image_layout, load_truth
from trustyard.scanning.detectors import dpkg, os_release
from trustyard.scanning.detectors.dpkg import (
    copyright_licenses,
    debian_license,
    is_installed,
    parse_paragraphs,
)
from trustyard.scanning.interfaces import HEAD_BYTES, Detector, FileEntry, Limits, ScanContext
from trustyard.scanning.layers import scan_layer
from trustyard.scanning.model import Component, Distro
from trustyard.scanning.sources import LayerRef

STATUS = "var/lib/dpkg/status"
DEBIAN_12 = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
OS_RELEASE = (
    b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    b'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
)


# --- walking a layer with these detectors only (the scanner's layer walk) -----------------


@dataclass
class Walked:
    components: list[Component]
    owned: set[str]
    distro: Distro | None
    notes: list[str]


TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def walk(stream: BinaryIO, media_type: str, context: ScanContext) -> Walked:
    """Walk a layer with the os-release and dpkg detectors only."""
    layer = LayerRef(digest="sha256:" + "0" * 64, media_type=media_type, size=0)
    detectors: list[Detector] = [os_release.DETECTOR, dpkg.DETECTOR]
    scan = scan_layer(stream, layer, detectors, context.limits, distro=context.distro)
    return Walked(scan.components, set(scan.owned_paths), scan.distro, scan.notes)


def walk_layer(blob: Path) -> Walked:
    with blob.open("rb") as stream:
        walked = walk(stream, TAR_GZIP, ScanContext(Limits()))
    assert walked.notes == []
    return walked


def layer_blobs(image: str) -> list[Path]:
    blobs = image_layout(image) / "blobs" / "sha256"
    return [
        blobs / layer["digest"].removeprefix("sha256:")
        for layer in image_info(image)["images"][0]["layers"]
    ]


def tar_bytes(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def walk_files(files: dict[str, bytes], context: ScanContext | None = None) -> Walked:
    return walk(tar_bytes(files), TAR, context or ScanContext(Limits()))


def by_name(components: Iterable[Component]) -> dict[str, Component]:
    found: dict[str, Component] = {}
    for component in components:
        assert component.name not in found, f"{component.name} found twice"
        found[component.name] = component
    return found


# --- the shared test images (real debootstrap and dpkg-deb layers) --------------------------


@pytest.fixture(scope="module")
def minbase() -> Walked:
    (blob,) = layer_blobs("debian-minbase")
    return walk_layer(blob)


def test_minbase_finds_exactly_the_installed_packages(minbase: Walked) -> None:
    truth = load_truth("debian-minbase")
    assert len(truth) == 88
    found = sorted((c.ecosystem, c.name, c.version) for c in minbase.components)
    assert found == sorted(truth)


def test_minbase_distro_and_purls(minbase: Walked) -> None:
    assert minbase.distro == DEBIAN_12
    packages = by_name(minbase.components)
    assert packages["zlib1g"].purl == (
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"
    )
    assert packages["tzdata"].purl == (
        "pkg:deb/debian/tzdata@2026b-0%2Bdeb12u1?arch=all&distro=debian-12"
    )
    assert all(c.detector == "dpkg" and c.evidence == STATUS for c in minbase.components)


def test_minbase_source_packages(minbase: Walked) -> None:
    packages = by_name(minbase.components)
    assert packages["libacl1"].properties == (("source", "acl"),)
    assert packages["zlib1g"].properties == (("source", "zlib"),)
    assert packages["tzdata"].properties == ()  # its own source


def test_minbase_locations_are_the_status_file_then_the_owned_files(minbase: Walked) -> None:
    zlib = by_name(minbase.components)["zlib1g"]
    # From info/zlib1g:amd64.list, without its directories.
    assert zlib.locations == (
        STATUS,
        "lib/x86_64-linux-gnu/libz.so.1.2.13",
        "usr/share/doc/zlib1g/changelog.Debian.gz",
        "usr/share/doc/zlib1g/changelog.gz",
        "usr/share/doc/zlib1g/copyright",
        "lib/x86_64-linux-gnu/libz.so.1",
    )
    bash = by_name(minbase.components)["bash"]
    assert "bin/bash" in bash.locations
    assert "bin" not in bash.locations
    assert "usr" not in bash.locations


def test_minbase_owned_paths_are_every_listed_path(minbase: Walked) -> None:
    assert {"bin/bash", "lib/x86_64-linux-gnu/libz.so.1", "usr/bin/dpkg"} <= minbase.owned
    assert "usr/share/doc/zlib1g" in minbase.owned
    assert not any(path.startswith("/") for path in minbase.owned)
    assert "." not in minbase.owned
    assert "" not in minbase.owned


def test_minbase_licences(minbase: Walked) -> None:
    packages = by_name(minbase.components)
    # DEP-5 copyright files.
    assert packages["zlib1g"].licenses == "Zlib"
    assert packages["adduser"].licenses == "GPL-2.0-or-later"
    assert packages["libseccomp2"].licenses == "LGPL-2.1-only"
    assert packages["libaudit1"].licenses == "GPL-2.0-only AND LGPL-2.1-only"
    assert packages["tzdata"].licenses == "LicenseRef-public-domain"
    # Old-style copyright files naming /usr/share/common-licenses/...
    assert packages["libc6"].licenses == "LGPL-2.1-only AND GPL-2.0-only"  # text order
    # libgcc-s1's doc directory is a symlink to gcc-12-base's: no file of its own.
    assert packages["libgcc-s1"].licenses is None
    with_licence = [c for c in minbase.components if c.licenses]
    assert len(with_licence) >= 80


@pytest.mark.parametrize("image", ["python-app", "node-app"])
def test_tiny_base_layer_of_the_app_images(image: str) -> None:
    base = layer_blobs(image)[0]
    walked = walk_layer(base)
    debs = sorted((e, n, v) for e, n, v in load_truth(image) if e == "deb")
    assert sorted((c.ecosystem, c.name, c.version) for c in walked.components) == debs
    busybox = by_name(walked.components)["busybox-static"]
    assert busybox.version == "1:1.35.0-4+deb12u1+b1"
    assert busybox.purl == (
        "pkg:deb/debian/busybox-static@1:1.35.0-4%2Bdeb12u1%2Bb1?arch=amd64&distro=debian-12"
    )
    assert busybox.properties == (("source", "busybox"), ("source_version", "1:1.35.0-4+deb12u1"))
    assert busybox.locations[0] == STATUS
    assert "bin/busybox" in busybox.locations
    assert "bin/busybox" in walked.owned
    assert walked.distro == DEBIAN_12


def test_the_app_layers_above_the_base_hold_no_debian_package() -> None:
    upper = layer_blobs("python-app")[1]
    walked = walk_layer(upper)
    assert walked.components == []
    assert walked.owned == set()


# --- status file semantics ------------------------------------------------------------------


def paragraph(name: str, version: str, status: str | None, **extra: str) -> str:
    lines = [f"Package: {name}"]
    if status is not None:
        lines.append(f"Status: {status}")
    lines.append("Architecture: amd64")
    lines.append(f"Version: {version}")
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in extra.items()]
    lines.append("Description: a package\n Its long description.\n .\n More: not a field.")
    return "\n".join(lines) + "\n"


def test_only_installed_packages_count() -> None:
    status = "\n".join(
        [
            paragraph("kept", "1.0", "install ok installed"),
            paragraph("held", "2.0", "hold ok installed"),
            paragraph("marked-for-removal", "3.0", "deinstall ok installed"),
            paragraph("removed", "4.0", "deinstall ok config-files"),
            paragraph("purged", "5.0", "purge ok not-installed"),
            paragraph("half", "6.0", "install ok half-installed"),
            paragraph("broken", "7.0", "install reinstreq half-installed"),
            paragraph("unpacked", "8.0", "install ok unpacked"),
            paragraph("no-status", "9.0", None),
        ]
    )
    walked = walk_files({STATUS: status.encode()})
    assert sorted(c.name for c in walked.components) == ["held", "kept", "marked-for-removal"]


@pytest.mark.parametrize(
    ("status", "installed"),
    [
        ("install ok installed", True),
        ("hold ok installed", True),
        ("install ok half-configured", False),
        ("install ok", False),
        ("", False),
        (None, False),
    ],
)
def test_is_installed(status: str | None, installed: bool) -> None:
    assert is_installed(status) is installed


def test_multi_arch_list_files_and_missing_lists() -> None:
    status = paragraph("libfoo1", "1.2-3", "install ok installed", Source="foo (1.2-2)")
    status += "\n" + paragraph("nolist", "1", "install ok installed")
    walked = walk_files(
        {
            STATUS: status.encode(),
            "var/lib/dpkg/info/libfoo1:amd64.list": b"/.\n/usr\n/usr/lib\n/usr/lib/libfoo.so.1\n",
            "var/lib/dpkg/info/libfoo1:arm64.list": b"/.\n/usr/lib/aarch64/libfoo.so.1\n",
        }
    )
    packages = by_name(walked.components)
    assert packages["libfoo1"].locations == (STATUS, "usr/lib/libfoo.so.1")
    assert packages["libfoo1"].properties == (("source", "foo"), ("source_version", "1.2-2"))
    assert packages["nolist"].locations == (STATUS,)
    assert walked.owned == {"usr", "usr/lib", "usr/lib/libfoo.so.1", "usr/lib/aarch64/libfoo.so.1"}


def test_namespace_without_os_release_in_the_layer() -> None:
    status = paragraph("hello", "2.10-3", "install ok installed").encode()
    walked = walk_files({STATUS: status})
    assert walked.components[0].purl == "pkg:deb/debian/hello@2.10-3?arch=amd64"
    ubuntu = ScanContext(Limits(), distro=Distro("ubuntu", "24.04"))
    walked = walk_files({STATUS: status}, ubuntu)
    assert walked.components[0].purl == "pkg:deb/ubuntu/hello@2.10-3?arch=amd64"
    walked = walk_files({STATUS: status, "usr/lib/os-release": b"ID=ubuntu\nVERSION_ID=22.04\n"})
    assert walked.components[0].purl == (
        "pkg:deb/ubuntu/hello@2.10-3?arch=amd64&distro=ubuntu-22.04"
    )


def test_status_file_above_the_size_limit_is_not_read() -> None:
    status = paragraph("hello", "2.10-3", "install ok installed").encode()
    small = ScanContext(Limits(max_file_bytes=len(status) - 1))
    walked = walk_files({STATUS: status}, small)
    assert walked.components == []
    limit = len(status) - 1
    assert walked.notes == [f"{STATUS}: {len(status)} bytes, over the {limit}-byte limit of dpkg"]


# --- distroless: var/lib/dpkg/status.d/ -----------------------------------------------------

# Real control paragraphs (debian-minbase's status file) as distroless writes them: one
# file per package, no Status field for some, with .md5sums files beside them.
DISTROLESS_BASE_FILES = b"""Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u15
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Pre-Depends: awk
Conffiles:
 /etc/debian_version da9f3e5a56d6162ea9d5feed57fbf349
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files, such as /etc/debian_version,
 /etc/host.conf, /etc/issue, /etc/motd, /etc/profile, and others,
 and the text of several common licenses in use on Debian systems.
"""
DISTROLESS_ZLIB = b"""Package: zlib1g
Priority: optional
Section: libs
Installed-Size: 168
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Provides: libz1
Depends: libc6 (>= 2.14)
Breaks: libxml2 (<< 2.7.6.dfsg-2), texlive-binaries (<< 2009-12)
Conflicts: zlib1 (<= 1:1.0.4-7)
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.  This package includes the shared library.
Homepage: http://zlib.net/
"""
DISTROLESS_TZDATA = b"""Package: tzdata
Priority: required
Section: localization
Installed-Size: 2573
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 2026b-0+deb12u1
Provides: tzdata-bookworm
Depends: debconf (>= 0.5) | debconf-2.0
Description: time zone and daylight-saving time data
 This package contains data required for the implementation of
 standard local time for many representative locations around the
 globe.
Homepage: https://www.iana.org/time-zones
"""
ZLIB_COPYRIGHT = b"""Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib
Source: http://zlib.net/

Files: *
Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
License: Zlib
 This software is provided 'as-is', without any express or implied
 warranty.
"""


ZLIB_MD5SUMS = b"""c7c774d91213e966a04b2e51c787be23  lib/x86_64-linux-gnu/libz.so.1.2.13
b46797e4e48336c9dbfe95eb2454fe57  usr/share/doc/zlib1g/changelog.Debian.gz
d348307d5bf18267bcbada155a715a3e  usr/share/doc/zlib1g/copyright
"""


def test_distroless_status_d_layout() -> None:
    walked = walk_files(
        {
            "etc/os-release": OS_RELEASE,
            "var/lib/dpkg/status.d/base-files": DISTROLESS_BASE_FILES,
            "var/lib/dpkg/status.d/base-files.md5sums": b"Package: not-a-package\nVersion: 0\n",
            "var/lib/dpkg/status.d/zlib1g": DISTROLESS_ZLIB,
            "var/lib/dpkg/status.d/zlib1g.md5sums": ZLIB_MD5SUMS,
            "var/lib/dpkg/status.d/tzdata": DISTROLESS_TZDATA,
            "usr/share/doc/zlib1g/copyright": ZLIB_COPYRIGHT,
        }
    )
    packages = by_name(walked.components)
    assert sorted(packages) == ["base-files", "tzdata", "zlib1g"]  # md5sums are no packages
    zlib = packages["zlib1g"]
    assert zlib.version == "1:1.2.13.dfsg-1"
    assert zlib.purl == "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"
    assert zlib.licenses == "Zlib"
    # The status.d file is the evidence; the md5sums beside it name the package's files.
    assert zlib.locations == (
        "var/lib/dpkg/status.d/zlib1g",
        "lib/x86_64-linux-gnu/libz.so.1.2.13",
        "usr/share/doc/zlib1g/changelog.Debian.gz",
        "usr/share/doc/zlib1g/copyright",
    )
    assert packages["tzdata"].locations == ("var/lib/dpkg/status.d/tzdata",)
    assert packages["base-files"].locations == ("var/lib/dpkg/status.d/base-files",)
    assert packages["base-files"].version == "12.4+deb12u15"
    assert walked.owned == {
        "lib/x86_64-linux-gnu/libz.so.1.2.13",
        "usr/share/doc/zlib1g/changelog.Debian.gz",
        "usr/share/doc/zlib1g/copyright",
    }
    assert walked.distro == DEBIAN_12


def test_distroless_entry_that_says_not_installed_is_skipped() -> None:
    removed = DISTROLESS_TZDATA.replace(
        b"Priority:", b"Status: deinstall ok config-files\nPriority:"
    )
    walked = walk_files({"var/lib/dpkg/status.d/tzdata": removed})
    assert walked.components == []


def test_status_wins_over_status_d_for_the_same_package() -> None:
    status = paragraph("zlib1g", "1:1.2.13.dfsg-1", "install ok installed").encode()
    walked = walk_files({STATUS: status, "var/lib/dpkg/status.d/zlib1g": DISTROLESS_ZLIB})
    assert [c.evidence for c in walked.components] == [STATUS]


# --- licences -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("synopsis", "expression"),
    [
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("LGPL-2+", "LGPL-2.0-or-later"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("GPL-3.0+", "GPL-3.0-or-later"),
        ("Expat", "MIT"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("Apache-2", "Apache-2.0"),
        ("Artistic", "Artistic-1.0"),
        ("GFDL-NIV-1.3+", "GFDL-1.3-no-invariants-or-later"),
        ("public-domain", "LicenseRef-public-domain"),
        ("BSD-3-clause or GPL-2", "BSD-3-Clause OR GPL-2.0-only"),
        ("ISC and/or LGPL-2.1+", "ISC OR LGPL-2.1-or-later"),
        ("GPL-3+ and ISC", "GPL-3.0-or-later AND ISC"),
        ("GPL-1+ or Artistic, and Expat", "(GPL-1.0-or-later OR Artistic-1.0) AND MIT"),
        ("GPL-3+ with Bison exception", "GPL-3.0-or-later WITH Bison-exception-2.2"),
        ("GPL-2 with Linux-syscall-note exception", "GPL-2.0-only WITH Linux-syscall-note"),
        ("GPL-2+ with Texinfo exception", "LicenseRef-GPL-2-with-Texinfo-exception"),
        ("MIT-like", "LicenseRef-MIT-like"),
        ("", None),
    ],
)
def test_debian_license(synopsis: str, expression: str | None) -> None:
    assert debian_license(synopsis) == expression


def test_dep5_copyright_combines_every_license_line_once() -> None:
    text = b"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: someone
License: GPL-2+

Files: lib/*
Copyright: someone else
License: LGPL-2.1+

Files: debian/*
License: GPL-2+

License: GPL-2+
 On Debian systems, the full text is in /usr/share/common-licenses/GPL-2.
 License: indented lines are licence text, not fields
"""
    assert copyright_licenses(text) == "GPL-2.0-or-later AND LGPL-2.1-or-later"


def test_old_style_copyright_points_at_common_licenses() -> None:
    text = b"""This is the Debian prepackaged version of the GNU C Library.

The GNU C Library is free software; you can redistribute it under the LGPL.
On Debian systems, the complete text of the GNU Library General Public
License can be found in `/usr/share/common-licenses/LGPL-2.1'.
The utilities are under the GPL: see /usr/share/common-licenses/GPL-2.
See also /usr/share/common-licenses/LGPL-2.1.
"""
    assert copyright_licenses(text) == "LGPL-2.1-only AND GPL-2.0-only"
    assert copyright_licenses(b"All rights reserved.\n") is None


# --- malformed input ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data: bytes) -> None:
    list(parse_paragraphs(data))
    copyright_licenses(data)
    copyright_licenses(b"Format: x\n" + data)
    collector = dpkg.DETECTOR.collector(ScanContext(Limits()))
    paths = (STATUS, "var/lib/dpkg/status.d/x", "var/lib/dpkg/status.d/x.md5sums")
    for path in (*paths, "var/lib/dpkg/info/x.list", "usr/share/doc/x/copyright"):
        entry = FileEntry(path, len(data), 0o644, data[:HEAD_BYTES])
        assert collector.wants(entry) > 0
        collector.take(entry, data)
    for component in collector.finish():
        assert component.name
        assert component.version


# One line of text (no line breaks of any kind, as str.splitlines knows them).
FIELD_VALUE = st.text(
    st.characters(exclude_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1, max_size=40
).filter(lambda value: value.strip() != "")


@st.composite
def random_paragraph(draw: st.DrawFn) -> tuple[str, str, bool]:
    name = draw(st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,20}", fullmatch=True))
    version = draw(st.from_regex(r"([0-9]:)?[0-9][A-Za-z0-9.+~-]{0,15}", fullmatch=True))
    installed = draw(st.booleans())
    status = "install ok installed" if installed else "deinstall ok config-files"
    fields = [f"Package: {name}", f"Status: {status}", f"Version: {version}"]
    extra = draw(
        st.lists(st.tuples(st.from_regex(r"[A-Z][a-z-]{1,10}", fullmatch=True), FIELD_VALUE))
    )
    fields += [f"X-{key}: {value}" for key, value in extra]
    description = draw(st.lists(FIELD_VALUE, min_size=1, max_size=4))
    fields.append("Description: " + "\n ".join(description))
    return "\n".join(fields) + "\n", f"{name}={version}", installed


@settings(max_examples=100, deadline=None)
@given(st.lists(random_paragraph(), max_size=8, unique_by=lambda p: p[1]))
def test_random_status_files_find_exactly_the_installed_packages(
    paragraphs: list[tuple[str, str, bool]],
) -> None:
    status = "\n".join(text for text, _, _ in paragraphs).encode()
    collector = dpkg.DETECTOR.collector(ScanContext(Limits()))
    collector.take(FileEntry(STATUS, len(status), 0o644, status[:HEAD_BYTES]), status)
    found = sorted(f"{c.name}={c.version}" for c in collector.finish())
    assert found == sorted(key for _, key, installed in paragraphs if installed)

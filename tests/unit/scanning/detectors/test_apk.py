"""The apk detector: Alpine's `lib/apk/db/installed`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.scanning.detectors import apk
from trustyard.scanning.detectors.apk import parse_installed
from trustyard.scanning.interfaces import HEAD_BYTES, FileEntry, Limits, ScanContext
from trustyard.scanning.model import Component, Distro, ScanRefused

INSTALLED = "lib/apk/db/installed"
ALPINE_OS_RELEASE = (
    b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
)

# As apk writes it: checksums, sizes, dependencies, directory ACLs (M:), file ACLs (a:) and
# file checksums (Z:) between the fields the detector reads.
DB = """C:Q1hNIFOTRWDmS7jhL+sNwkBaCvg3w=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1700000000
c:3b5c5c8e5a7f0b5e7e8d1b9d6f2a3c4e5f6a7b8c
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1yNnpQJpVkRz0nG5hGxVB2bxTeeI=
R:libc.musl-x86_64.so.1
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1nQmLbvFiNy0x5bN0yDqXVk6wPpE=
P:busybox
V:1.36.1-r15
A:x86_64
S:500000
I:900000
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1700000001
c:0123456789abcdef0123456789abcdef01234567
D:so:libc.musl-x86_64.so.1
F:bin
R:busybox
a:0:0:755
Z:Q1WUwBY0eOGgzgVxTZxJBZPyQUicI=
F:etc
R:securetty
Z:Q1mB95Hq2NUTZ599RDiSsj9w5FrOU=
R:udhcpd.conf
Z:Q1EgLFjj67ou3eMqp4m3r2ZjnQ7QU=
F:etc/logrotate.d
R:acpid
F:etc/network
F:etc/network/if-up.d
F:usr
F:usr/share
F:usr/share/udhcpc
R:default.script
a:0:0:755

C:Q1abc=
P:ssl_client
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
F:usr/bin
R:ssl_client

C:Q1def=
P:ca-certificates-bundle
V:20230506-r0
A:x86_64
L:MPL-2.0 AND MIT
o:ca-certificates
F:etc/ssl/certs
R:ca-certificates.crt

P:alpine-baselayout-data
V:3.4.3-r2
A:x86_64
L:GPL-2.0-only
o:alpine-baselayout
R:at-the-root

P:oldlicence
V:1.0-r0
A:noarch
L:GPL2+ or Artistic
""".encode()


def collect(
    files: dict[str, bytes], context: ScanContext | None = None
) -> tuple[list[Component], set[str]]:
    collector = apk.DETECTOR.collector(context or ScanContext(Limits()))
    for path, data in files.items():
        entry = FileEntry(path, len(data), 0o644, data[:HEAD_BYTES])
        limit = collector.wants(entry)
        if limit and len(data) <= limit:
            collector.take(entry, data)
    components = list(collector.finish())
    return components, set(collector.owned_paths())


def by_name(components: list[Component]) -> dict[str, Component]:
    return {c.name: c for c in components}


def test_finds_every_package_with_its_version_and_arch() -> None:
    components, _ = collect({INSTALLED: DB, "etc/os-release": ALPINE_OS_RELEASE})
    assert [(c.ecosystem, c.name, c.version) for c in components] == [
        ("apk", "musl", "1.2.4_git20230717-r4"),
        ("apk", "busybox", "1.36.1-r15"),
        ("apk", "ssl_client", "1.36.1-r15"),
        ("apk", "ca-certificates-bundle", "20230506-r0"),
        ("apk", "alpine-baselayout-data", "3.4.3-r2"),
        ("apk", "oldlicence", "1.0-r0"),
    ]
    packages = by_name(components)
    assert packages["musl"].purl == (
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
    )
    assert all(c.detector == "apk" for c in components)


def test_files_lists_become_locations_and_owned_paths() -> None:
    components, owned = collect({INSTALLED: DB})
    packages = by_name(components)
    assert packages["musl"].locations == (
        INSTALLED,
        "lib/ld-musl-x86_64.so.1",
        "lib/libc.musl-x86_64.so.1",
    )
    assert packages["busybox"].locations == (
        INSTALLED,
        "bin/busybox",
        "etc/securetty",
        "etc/udhcpd.conf",
        "etc/logrotate.d/acpid",
        "usr/share/udhcpc/default.script",
    )
    assert packages["alpine-baselayout-data"].locations == (INSTALLED, "at-the-root")
    assert packages["oldlicence"].locations == (INSTALLED,)
    assert "usr/bin/ssl_client" in owned
    assert "etc/ssl/certs/ca-certificates.crt" in owned
    assert "etc/network" not in owned  # a directory: F: lines are not files
    assert len(owned) == 10


def test_licences_and_origin() -> None:
    components, _ = collect({INSTALLED: DB})
    packages = by_name(components)
    assert packages["musl"].licenses == "MIT"
    assert packages["busybox"].licenses == "GPL-2.0-only"
    assert packages["ca-certificates-bundle"].licenses == "MPL-2.0 AND MIT"
    assert packages["oldlicence"].licenses is not None
    assert packages["ssl_client"].properties == (("source", "busybox"),)
    assert packages["oldlicence"].properties == ()


def test_namespace_without_os_release_in_the_layer() -> None:
    components, _ = collect({INSTALLED: DB})
    assert by_name(components)["musl"].purl == (
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64"
    )
    wolfi = ScanContext(Limits(), distro=Distro("wolfi", "20230201"))
    components, _ = collect({INSTALLED: DB}, wolfi)
    assert by_name(components)["musl"].purl == (
        "pkg:apk/wolfi/musl@1.2.4_git20230717-r4?arch=x86_64"
    )


def test_other_paths_are_not_read_and_an_oversized_database_is_refused() -> None:
    components, _ = collect({"lib/apk/db/installed.old": DB, "lib/apk/db/triggers": DB})
    assert components == []
    small = ScanContext(Limits(max_metadata_bytes=len(DB) - 1))
    expected = f"lib/apk/db/installed is {len(DB)} bytes, more than {len(DB) - 1} "
    with pytest.raises(ScanRefused, match=re.escape(expected + "(the max_metadata_bytes limit)")):
        collect({INSTALLED: DB}, small)


def test_incomplete_paragraphs_are_skipped() -> None:
    data = b"P:no-version\nA:x86_64\n\nV:1.0\nA:x86_64\n\nP:ok\nV:1\nR:file-without-dir\n\n\n"
    assert [(p.name, p.version, p.files) for p in parse_installed(data)] == [
        ("ok", "1", ["file-without-dir"])
    ]
    # CRLF line ends and a last paragraph without a final newline.
    data = b"P:a\r\nV:1-r0\r\nF:usr/lib\r\nR:liba.so\r\n\r\nP:b\r\nV:2-r0"
    assert [(p.name, p.version, p.files) for p in parse_installed(data)] == [
        ("a", "1-r0", ["usr/lib/liba.so"]),
        ("b", "2-r0", []),
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data: bytes) -> None:
    components, _ = collect({INSTALLED: data, "etc/os-release": data})
    for component in components:
        assert component.name
        assert component.version


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("PVALoFRCTmtcDSIZa"),
            st.text(st.characters(codec="utf-8"), max_size=30),
        ),
        max_size=40,
    )
)
def test_random_field_lines_never_raise(lines: list[tuple[str, str]]) -> None:
    data = "\n".join(f"{key}:{value}" for key, value in lines).encode()
    components, owned = collect({INSTALLED: data})
    for component in components:
        assert component.locations[0] == INSTALLED
    assert all(path for path in owned)


def test_a_package_whose_name_makes_no_purl_costs_only_itself() -> None:
    # packageurl raised TypeError for a name that normalises to nothing ("/"): the detector
    # failed and the layer lost every apk package (a way to hide them from the scan).
    data = b"P:/\nV:1.0-r0\n\nP:musl\nV:1.2.4-r2\nA:x86_64\n"
    components, _ = collect({INSTALLED: data})
    assert "musl" in {component.name for component in components}
    assert all(component.purl is None or "musl" in component.purl for component in components)

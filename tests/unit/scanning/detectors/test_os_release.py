"""The os-release detector: which distribution a layer holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.scanning.detectors import os_release
from trustyard.scanning.detectors.os_release import parse_fields, parse_os_release, purl_distro
from trustyard.scanning.interfaces import (
    HEAD_BYTES,
    DistroCollector,
    FileEntry,
    Limits,
    ScanContext,
)
from trustyard.scanning.model import Distro

DEBIAN = b"""PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""
ALPINE = b"""NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
"""
UBI = b"""NAME="Red Hat Enterprise Linux"
VERSION="9.3 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.3"
PRETTY_NAME='Red Hat Enterprise Linux 9.3 (Plow)'
"""


def collect(files: dict[str, bytes]) -> DistroCollector:
    collector = os_release.DETECTOR.collector(ScanContext(Limits()))
    for path, data in files.items():
        entry = FileEntry(path, len(data), 0o644, data[:HEAD_BYTES])
        if collector.wants(entry):
            collector.take(entry, data)
    assert list(collector.finish()) == []
    return collector


@pytest.mark.parametrize(
    ("data", "distro"),
    [
        (DEBIAN, Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")),
        (ALPINE, Distro("alpine", "3.19.1", "Alpine Linux v3.19")),
        (UBI, Distro("rhel", "9.3", "Red Hat Enterprise Linux 9.3 (Plow)")),
        (
            b'ID=debian\nPRETTY_NAME="Debian GNU/Linux trixie/sid"\n',
            Distro("debian", "", "Debian GNU/Linux trixie/sid"),
        ),
        (b"NAME=nothing\n", None),
        (b"", None),
    ],
)
def test_parse_os_release(data: bytes, distro: Distro | None) -> None:
    assert parse_os_release(data) == distro


def test_quoting_comments_and_junk() -> None:
    data = (
        b"# a comment\n"
        b'  ID="my\\"distro"  \n'
        b"NOT A FIELD\n"
        b"=no-key\n"
        b"VERSION_ID='1.0 $x'\n"
        b'PRETTY_NAME="a \\$b \\`c\\` \\\\ d \\n"\r\n'
        b"\xff\xfe=binary\n"
    )
    assert parse_fields(data) == {
        "ID": 'my"distro',
        "VERSION_ID": "1.0 $x",
        "PRETTY_NAME": "a $b `c` \\ d \\n",
    }


def test_reads_both_paths_and_etc_wins() -> None:
    assert collect({"usr/lib/os-release": DEBIAN}).distro() == parse_os_release(DEBIAN)
    assert collect({"etc/os-release": ALPINE}).distro() == parse_os_release(ALPINE)
    both = {"usr/lib/os-release": DEBIAN, "etc/os-release": ALPINE}
    assert collect(both).distro() == parse_os_release(ALPINE)
    both_reversed = {"etc/os-release": ALPINE, "usr/lib/os-release": DEBIAN}
    assert collect(both_reversed).distro() == parse_os_release(ALPINE)


def test_an_unreadable_etc_file_leaves_the_usr_lib_one() -> None:
    files = {"etc/os-release": b"garbage", "usr/lib/os-release": DEBIAN}
    assert collect(files).distro() == parse_os_release(DEBIAN)


def test_other_paths_are_not_wanted() -> None:
    collector = os_release.DETECTOR.collector(ScanContext(Limits()))
    for path in ("os-release", "etc/os-release.bak", "usr/lib/os-release/x", "etc/lsb-release"):
        assert collector.wants(FileEntry(path, 10, 0o644, b"")) == 0
    assert collect({}).distro() is None


def test_purl_distro() -> None:
    none = ScanContext(Limits())
    image = ScanContext(Limits(), distro=Distro("ubuntu", "24.04"))
    debian = Distro("debian", "12")
    assert purl_distro(debian, none, "x") == ("debian", {"distro": "debian-12"})
    assert purl_distro(debian, image, "x") == ("debian", {"distro": "debian-12"})
    assert purl_distro(Distro("debian", ""), none, "x") == ("debian", {})
    assert purl_distro(None, image, "x") == ("ubuntu", {})
    assert purl_distro(None, none, "x") == ("x", {})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    distro = parse_os_release(data)
    if distro is not None:
        assert distro.id
    collect({"etc/os-release": data, "usr/lib/os-release": data})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True),
        st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30),
        max_size=8,
    )
)
def test_single_quoted_values_round_trip(fields: dict[str, str]) -> None:
    lines = []
    expected = {}
    for key, value in fields.items():
        if "'" in value or value != value.strip():
            continue
        lines.append(f"{key}='{value}'")
        expected[key] = value
    assert parse_fields("\n".join(lines).encode()) == expected

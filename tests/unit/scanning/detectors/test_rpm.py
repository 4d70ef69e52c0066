"""The rpm detector: the sqlite rpmdb of rpm >= 4.16, read in memory.

The database is a real one: tiny packages built with `rpmbuild` from the specs below and
installed with `rpm --root` (Debian's `rpm` package, see scripts/install-system-deps.sh),
cached under /var/cache/trustyard/scan-fixtures/rpm/<hash of the specs>/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.scanning.detectors import rpm
from trustyard.scanning.detectors.rpm import parse_header, read_packages
from trustyard.scanning.interfaces import HEAD_BYTES, FileEntry, Limits, ScanContext
from trustyard.scanning.model import Component, Distro, ScanRefused

FIXTURES = Path(os.environ.get("TRUSTYARD_SCAN_FIXTURES", "/var/cache/trustyard/scan-fixtures"))
RPMDB = "var/lib/rpm/rpmdb.sqlite"
SYSIMAGE_RPMDB = "usr/lib/sysimage/rpm/rpmdb.sqlite"
RHEL_OS_RELEASE = b'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.3"\n'

NO_AUTODEPS = """AutoReqProv: no
%global debug_package %{nil}
%global __os_install_post %{nil}
"""
SPECS = {
    "ty-hello": NO_AUTODEPS
    + """Name: ty-hello
Epoch: 2
Version: 1.2.3
Release: 4
Summary: says hello
License: MIT AND (GPL-2.0-or-later OR BSD-3-Clause)
BuildArch: noarch
%description
Says hello.
%install
mkdir -p %{buildroot}/usr/share/ty-hello %{buildroot}/usr/bin
echo hello > %{buildroot}/usr/share/ty-hello/README
printf '#!/bin/sh\\necho hello\\n' > %{buildroot}/usr/bin/ty-hello
chmod 755 %{buildroot}/usr/bin/ty-hello
%files
%dir /usr/share/ty-hello
/usr/share/ty-hello/README
/usr/bin/ty-hello
""",
    "ty-lib": NO_AUTODEPS
    + """Name: ty-lib
Version: 0.9
Release: 2.el9
Summary: a library
License: GPL-2.0-or-later WITH Classpath-exception-2.0
%description
A library.
%install
mkdir -p %{buildroot}/usr/lib64
echo not-really-elf > %{buildroot}/usr/lib64/libty.so.1
ln -s libty.so.1 %{buildroot}/usr/lib64/libty.so
%files
/usr/lib64/libty.so.1
/usr/lib64/libty.so
""",
    "ty-data": NO_AUTODEPS
    + """Name: ty-data
Version: 2024.1
Release: 1
Summary: data
License: Apache-2.0
BuildArch: noarch
%description
Data.
%install
mkdir -p %{buildroot}/etc
echo x=1 > %{buildroot}/etc/ty-data.conf
%files
%config /etc/ty-data.conf
""",
}


def _build_rpmdb(target: Path) -> None:
    """rpmbuild the specs, install them into an empty root, keep its rpmdb.sqlite."""
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        pytest.fail("rpm/rpmbuild missing: run scripts/install-system-deps.sh")
    with tempfile.TemporaryDirectory(prefix="ty-rpm-") as work:
        top, root = Path(work, "top"), Path(work, "root")
        root.mkdir()
        for name, spec in SPECS.items():
            spec_path = Path(work, f"{name}.spec")
            spec_path.write_text(spec, encoding="utf-8")
            build = ["rpmbuild", "--define", f"_topdir {top}", "--target", "x86_64"]
            subprocess.run(
                [*build, "--define", "_build_id_links none", "-bb", str(spec_path)],
                check=True,
                capture_output=True,
                timeout=120,
            )
        packages = sorted(str(p) for p in top.glob("RPMS/*/*.rpm"))
        assert len(packages) == len(SPECS)
        install = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
        install += ["--define", "_db_backend sqlite", "--nodeps", "--noscripts"]
        install += ["--nosignature", "--ignorearch", "--ignoreos", "-i"]
        subprocess.run(
            [*install, *packages],
            check=True,
            capture_output=True,
            timeout=120,
        )
        database = root / RPMDB
        if Path(f"{database}-wal").exists():  # fold a leftover write-ahead log in
            with closing(sqlite3.connect(database)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(database, partial)
        partial.replace(target)


@pytest.fixture(scope="module")
def rpmdb_bytes() -> bytes:
    key = hashlib.sha256(repr(sorted(SPECS.items())).encode()).hexdigest()[:16]
    target = FIXTURES / "rpm" / key / "rpmdb.sqlite"
    if not target.exists():
        _build_rpmdb(target)
    return target.read_bytes()


def collect(
    files: dict[str, bytes], context: ScanContext | None = None
) -> tuple[list[Component], set[str]]:
    collector = rpm.DETECTOR.collector(context or ScanContext(Limits()))
    for path, data in files.items():
        entry = FileEntry(path, len(data), 0o644, data[:HEAD_BYTES])
        limit = collector.wants(entry)
        if limit and len(data) <= limit:
            collector.take(entry, data)
    components = list(collector.finish())
    return components, set(collector.owned_paths())


def by_name(components: list[Component]) -> dict[str, Component]:
    return {c.name: c for c in components}


def test_the_fixture_is_a_wal_mode_sqlite_rpmdb(rpmdb_bytes: bytes) -> None:
    assert rpmdb_bytes.startswith(b"SQLite format 3\x00")
    assert rpmdb_bytes[18:20] == b"\x02\x02"  # what rpm writes: read as is, without -shm


def test_finds_the_installed_packages(rpmdb_bytes: bytes) -> None:
    components, _ = collect({RPMDB: rpmdb_bytes})
    assert sorted((c.ecosystem, c.name, c.version) for c in components) == [
        ("rpm", "ty-data", "2024.1-1"),
        ("rpm", "ty-hello", "2:1.2.3-4"),
        ("rpm", "ty-lib", "0.9-2.el9"),
    ]
    assert all(c.detector == "rpm" for c in components)


def test_purls_carry_arch_and_epoch(rpmdb_bytes: bytes) -> None:
    packages = by_name(collect({RPMDB: rpmdb_bytes})[0])
    assert packages["ty-hello"].purl == "pkg:rpm/redhat/ty-hello@1.2.3-4?arch=noarch&epoch=2"
    assert packages["ty-lib"].purl == "pkg:rpm/redhat/ty-lib@0.9-2.el9?arch=x86_64"
    with_os = by_name(collect({RPMDB: rpmdb_bytes, "etc/os-release": RHEL_OS_RELEASE})[0])
    assert with_os["ty-hello"].purl == (
        "pkg:rpm/rhel/ty-hello@1.2.3-4?arch=noarch&distro=rhel-9.3&epoch=2"
    )
    fedora = ScanContext(Limits(), distro=Distro("fedora", "40"))
    in_fedora = by_name(collect({RPMDB: rpmdb_bytes}, fedora)[0])
    assert in_fedora["ty-data"].purl == "pkg:rpm/fedora/ty-data@2024.1-1?arch=noarch"


def test_licences_and_source_rpm(rpmdb_bytes: bytes) -> None:
    packages = by_name(collect({RPMDB: rpmdb_bytes})[0])
    assert packages["ty-hello"].licenses == "MIT AND (GPL-2.0-or-later OR BSD-3-Clause)"
    assert packages["ty-data"].licenses == "Apache-2.0"
    assert packages["ty-lib"].licenses == "GPL-2.0-or-later WITH Classpath-exception-2.0"
    assert packages["ty-hello"].properties == (("source", "ty-hello-1.2.3-4.src.rpm"),)
    assert packages["ty-lib"].properties == (("source", "ty-lib-0.9-2.el9.src.rpm"),)


def test_owned_files(rpmdb_bytes: bytes) -> None:
    components, owned = collect({RPMDB: rpmdb_bytes})
    packages = by_name(components)
    assert packages["ty-hello"].locations == (
        RPMDB,
        "usr/bin/ty-hello",
        "usr/share/ty-hello/README",
    )  # the %dir is owned, but is not a file
    assert packages["ty-lib"].locations == (RPMDB, "usr/lib64/libty.so", "usr/lib64/libty.so.1")
    assert packages["ty-data"].locations == (RPMDB, "etc/ty-data.conf")
    assert owned == {
        "usr/bin/ty-hello",
        "usr/share/ty-hello",
        "usr/share/ty-hello/README",
        "usr/lib64/libty.so",
        "usr/lib64/libty.so.1",
        "etc/ty-data.conf",
    }


def test_sysimage_path_and_rollback_journal_mode(rpmdb_bytes: bytes) -> None:
    source = sqlite3.connect(":memory:")
    source.deserialize(rpmdb_bytes[:18] + b"\x01\x01" + rpmdb_bytes[20:])
    source.execute("PRAGMA journal_mode=DELETE")
    rollback = source.serialize()
    source.close()
    assert rollback[18:20] == b"\x01\x01"
    components, _ = collect({SYSIMAGE_RPMDB: rollback})
    assert len(components) == 3
    assert {c.evidence for c in components} == {SYSIMAGE_RPMDB}


def test_other_paths_are_not_read_and_an_oversized_database_is_refused(
    rpmdb_bytes: bytes,
) -> None:
    assert collect({"var/lib/rpm/Packages": rpmdb_bytes})[0] == []
    assert collect({"srv/var/lib/rpm/rpmdb.sqlite": rpmdb_bytes})[0] == []
    size = len(rpmdb_bytes)
    small = ScanContext(Limits(max_rpmdb_bytes=size - 1))
    expected = f"{RPMDB} is {size} bytes, more than {size - 1} (the max_rpmdb_bytes limit)"
    with pytest.raises(ScanRefused, match=re.escape(expected)):
        collect({RPMDB: rpmdb_bytes}, small)


# --- hand-made headers ----------------------------------------------------------------------

STRING, STRING_ARRAY, INT16, INT32 = 6, 8, 3, 4
TagValue = str | list[str] | list[int]


def header(tags: dict[int, tuple[int, TagValue]]) -> bytes:
    """An rpm header blob (as rpmdb stores it: no magic) from {tag: (type, value)}."""
    index, data = b"", b""
    for tag, (kind, value) in tags.items():
        if kind == STRING:
            assert isinstance(value, str)
            encoded, count = value.encode() + b"\x00", 1
        elif kind == STRING_ARRAY:
            assert isinstance(value, list)
            encoded = b"".join(str(v).encode() + b"\x00" for v in value)
            count = len(value)
        else:
            assert isinstance(value, list)
            while len(data) % (4 if kind == INT32 else 2):
                data += b"\x00"
            encoded = struct.pack(f">{len(value)}{'I' if kind == INT32 else 'H'}", *value)
            count = len(value)
        index += struct.pack(">iIii", tag, kind, len(data), count)
        data += encoded
    return struct.pack(">II", len(tags), len(data)) + index + data


def sqlite_rpmdb(blobs: list[bytes]) -> bytes:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    connection.commit()
    data = connection.serialize()
    connection.close()
    return data


def package_tags(
    name: str, version: str = "1.0", release: str = "1"
) -> dict[int, tuple[int, TagValue]]:
    return {
        1000: (STRING, name),
        1001: (STRING, version),
        1002: (STRING, release),
        1022: (STRING, "x86_64"),
        1014: (STRING, "MIT"),
    }


def test_signing_keys_and_incomplete_headers_are_skipped() -> None:
    old_style = package_tags("old-style")
    old_style[1027] = (STRING_ARRAY, ["/usr/bin/old", "/etc/old.conf"])  # OLDFILENAMES
    no_release = package_tags("no-release")
    del no_release[1002]
    blobs = [
        header(package_tags("gpg-pubkey", "fd431d51", "4ae0493b")),
        header(old_style),
        header(no_release),
        b"\x8e\xad\xe8\x01\x00\x00\x00\x00" + header(package_tags("with-magic")),
        header(package_tags("truncated"))[:-3],
        b"",
        b"\x00\x00\xff\xff\x00\x00\x00\x10",
    ]
    components, owned = collect({RPMDB: sqlite_rpmdb(blobs)})
    assert [c.name for c in components] == ["old-style", "with-magic"]
    assert components[0].locations == (RPMDB, "usr/bin/old", "etc/old.conf")
    assert owned == {"usr/bin/old", "etc/old.conf"}


def test_entries_pointing_outside_the_data_are_ignored() -> None:
    blob = bytearray(header(package_tags("fine")))
    # Move the LICENSE entry's offset (the 5th index entry) past the data.
    struct.pack_into(">i", blob, 8 + 16 * 4 + 8, 10_000)
    tags = parse_header(bytes(blob))
    assert tags[1000] == "fine"
    assert 1014 not in tags


def test_dirindexes_out_of_range_are_dropped() -> None:
    tags = package_tags("files")
    tags[1116] = (INT32, [0, 5, 1])
    tags[1117] = (STRING_ARRAY, ["a", "b", "c"])
    tags[1118] = (STRING_ARRAY, ["/usr/", "/etc/"])
    tags[1030] = (INT16, [0o100644, 0o100644, 0o040755])
    (component,), owned = collect({RPMDB: sqlite_rpmdb([header(tags)])})
    assert owned == {"usr/a", "etc/c"}
    assert component.locations == (RPMDB, "usr/a", "etc/c")


def test_what_is_not_an_rpmdb_finds_nothing() -> None:
    not_rpm = sqlite3.connect(":memory:")
    not_rpm.execute("CREATE TABLE other (x)")
    data = not_rpm.serialize()
    not_rpm.close()
    for content in (data, b"SQLite format 3\x00" + b"\xff" * 200, b"\x00" * 4096, b""):
        assert collect({RPMDB: content})[0] == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_header_blobs_never_raise(blob: bytes) -> None:
    parse_header(blob)
    parse_header(b"\x8e\xad\xe8\x01\x00\x00\x00\x00" + blob)
    parse_header(struct.pack(">II", 3, len(blob)) + blob)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_real_headers_never_raise(rpmdb_bytes: bytes, data: st.DataObject) -> None:
    blobs = [bytearray(b) for b in rpm.read_rpmdb(rpmdb_bytes)]
    for blob in blobs:
        for _ in range(data.draw(st.integers(0, 8))):
            position = data.draw(st.integers(0, len(blob) - 1))
            blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, 64))
    packages = read_packages(sqlite_rpmdb([bytes(b[: len(b) - cut]) for b in blobs]))
    for package in packages:
        assert package.name
        assert package.version


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=100, max_size=8192))
def test_random_databases_never_raise(tail: bytes) -> None:
    collect({RPMDB: b"SQLite format 3\x00" + tail})
    collect({RPMDB: tail})

"""The fingerprint detector: versions of well-known libraries from their bytes.

Real data: the shared libraries and tools of Debian packages installed here (libssl3,
zlib1g, busybox, libsqlite3-0, libcurl4...), copied renamed into a test layer, and C programs
statically linked against Debian's libz.a and libsqlite3.a (binkit.static_fixtures); the
version each reports must be the Debian package's upstream version. Synthetic ELF, PE and
Mach-O files cover the formats and the edge cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scanning import binkit
from tests.unit.scanning.binkit import Sec
from tests.unit.scanning.detectors.langkit import detect, wanted
from tests.unit.scanning.layerkit import OCI_TAR, file, layer_ref, scan_bytes, tar_bytes
from trustyard.scanning.binaries.executable import parse
from trustyard.scanning.bom import assemble
from trustyard.scanning.detectors.fingerprints import DETECTOR, fingerprint
from trustyard.scanning.model import Component
from trustyard.scanning.sources import ImageRef


def busybox_package() -> str:
    return binkit.run("dpkg", "-S", "/bin/busybox").split(":", 1)[0]


# (library, Debian package, a regex for the file in the package)
REAL = [
    ("openssl", "libssl3", r"/libcrypto\.so\.3$"),
    ("zlib", "zlib1g", r"/libz\.so\.1\.\d"),
    ("busybox", "<busybox>", r"/bin/busybox$"),
    ("sqlite", "libsqlite3-0", r"/libsqlite3\.so\.0\.\d"),
    ("curl", "libcurl4", r"/libcurl\.so\.4\.\d"),
    ("bzip2", "libbz2-1.0", r"/libbz2\.so\.1\.0\.\d"),
    ("xz", "xz-utils", r"/bin/xz$"),
    ("libpng", "libpng16-16", r"/libpng16\.so\.16\.\d"),
    ("openssh", "openssh-client", r"/bin/ssh$"),
    ("glibc", "libc6", r"/libc\.so\.6$"),
    ("pcre2", "libpcre2-8-0", r"/libpcre2-8\.so\.0\.\d"),
]


def found(components: list[Component]) -> set[tuple[str, str]]:
    assert all(c.ecosystem == "binary" and c.detector == "fingerprints" for c in components)
    return {(c.name, c.version) for c in components}


def real_files() -> list[tuple[str, str, Path]]:
    """(library, expected version, file) for each REAL row."""
    rows = []
    for library, package, pattern in REAL:
        owner = busybox_package() if package == "<busybox>" else package
        rows.append((library, binkit.upstream_version(owner), binkit.package_file(owner, pattern)))
    return rows


def test_real_libraries_renamed_in_a_layer_report_their_debian_versions() -> None:
    rows = real_files()
    members = [
        file(f"opt/vendor/blob{index}.dat", path.read_bytes(), mode=0o644)
        for index, (_, _, path) in enumerate(rows)
    ]
    scan = scan_bytes(tar_bytes(members), [DETECTOR], media_type=OCI_TAR)
    by_path: dict[str, set[tuple[str, str]]] = {}
    for component in scan.components:
        by_path.setdefault(component.evidence, set()).add((component.name, component.version))
    assert by_path == {
        f"opt/vendor/blob{index}.dat": {(library, version)}
        for index, (library, version, _) in enumerate(rows)
    }
    for component in scan.components:
        assert component.purl == f"pkg:generic/{component.name}@{component.version}"
        assert component.locations == (component.evidence,)
        assert component.version in dict(component.properties)["fingerprint"]
    assert scan.notes == []


def test_markers_are_what_the_library_says() -> None:
    libcrypto = binkit.package_file("libssl3", r"/libcrypto\.so\.3$").read_bytes()
    [(name, version, marker)] = fingerprint(libcrypto)
    assert (name, version) == ("openssl", binkit.upstream_version("libssl3"))
    assert marker.startswith(f"OpenSSL {version} ")  # "OpenSSL 3.0.19 27 Jan 2026"
    libz = binkit.package_file("zlib1g", r"/libz\.so\.1\.\d").read_bytes()
    [(_, version, marker)] = fingerprint(libz)
    assert marker.startswith(f"deflate {version} Copyright 1995-")
    libcurl = binkit.package_file("libcurl4", r"/libcurl\.so\.4\.\d").read_bytes()
    assert fingerprint(libcurl)[0][2] == f"libcurl/{binkit.upstream_version('libcurl4')}"


@pytest.fixture(scope="module")
def static_dir() -> Path:
    return binkit.static_fixtures()


@pytest.mark.parametrize("name", ["zlib-static", "zlib-static-stripped"])
def test_statically_linked_zlib(static_dir: Path, name: str) -> None:
    components = detect(DETECTOR, {"usr/local/bin/app": (static_dir / name).read_bytes()})
    assert found(components) == {("zlib", binkit.upstream_version("zlib1g"))}
    assert binkit.upstream_version("zlib1g") == binkit.upstream_version("zlib1g-dev")


@pytest.mark.parametrize("name", ["sqlite-static", "sqlite-static-stripped"])
def test_statically_linked_sqlite(static_dir: Path, name: str) -> None:
    components = detect(DETECTOR, {"app": (static_dir / name).read_bytes()})
    assert found(components) == {("sqlite", binkit.upstream_version("libsqlite3-dev"))}


def test_text_files_are_not_binaries() -> None:
    text = b"This package ships OpenSSL 3.0.11 19 Sep 2023 and BusyBox v1.36.1 (2023).\n" * 4
    assert not wanted(DETECTOR, "usr/share/doc/openssl/README", text)
    assert detect(DETECTOR, {"usr/share/doc/openssl/README": text}) == []


# --- synthetic executables --------------------------------------------------------------------

MARKERS = (
    b"\0OpenSSL 1.1.1w  11 Sep 2023\0"
    b"\0 inflate 1.3.1 Copyright 1995-2024 Mark Adler \0"
    b"\0BusyBox v1.36.1 (2023-11-07 18:53:09 UTC)\0"
    b"\0libcurl/8.5.0\0"
    b"\0xz (XZ Utils) 5.6.1\0"
    b"\0libpng version 1.6.43\0"
    b"\0OpenSSH_9.6\0OpenSSH_9.6p1\0"
    b"\0GNU C Library (GNU libc) stable release version 2.39.\0"
)
SYNTHETIC = {
    ("openssl", "1.1.1w"),
    ("zlib", "1.3.1"),
    ("busybox", "1.36.1"),
    ("curl", "8.5.0"),
    ("xz", "5.6.1"),
    ("libpng", "1.6.43"),
    ("openssh", "9.6p1"),  # OpenSSH_9.6 beside it is the same release
    ("glibc", "2.39"),
}


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("bits", [64, 32])
def test_elf_read_only_data(big: bool, bits: int) -> None:
    data = binkit.elf(
        [Sec(".text", b"\x90" * 64, 0x1000, executable=True), Sec(".rodata", MARKERS, 0x2000)],
        big=big,
        bits=bits,
    )
    assert found(detect(DETECTOR, {"x": data})) == SYNTHETIC


def test_elf_without_sections_searches_its_read_only_segments() -> None:
    data = binkit.elf(
        [Sec(".text", b"\x90" * 64, 0x1000, executable=True), Sec(".rodata", MARKERS, 0x2000)],
        section_table=False,
    )
    assert parse(data)[0].sections == ()
    assert found(detect(DETECTOR, {"x": data})) == SYNTHETIC


def test_pe_rdata_and_macho_cstring() -> None:
    exe = binkit.pe(
        [Sec(".text", b"\x90" * 64, 0x1000, executable=True), Sec(".rdata", MARKERS, 0x2000)]
    )
    assert found(detect(DETECTOR, {"tool.exe": exe})) == SYNTHETIC
    macho = binkit.macho(
        [("__TEXT", "__text", b"\x90" * 64, 0x1000), ("__TEXT", "__cstring", MARKERS, 0x1040)]
    )
    assert found(detect(DETECTOR, {"tool": macho})) == SYNTHETIC


def rodata_elf(strings: bytes) -> bytes:
    return binkit.elf([Sec(".rodata", b"\0" + strings + b"\0", 0x2000)])


@pytest.mark.parametrize(
    "strings",
    [
        b"OpenSSL 3.0 or later is required",
        b"OpenSSL_version\0OpenSSL 3\0",
        b"BusyBox v1.36.1",  # no " (" after the version: not the banner
        b" deflate 1.2.13 Copyright 1994-2022",  # zlib's copyright starts in 1995
        b"OpenSSH_2.*,OpenSSH_3.0*,OpenSSH_3.1*",  # ssh's compatibility patterns
        b"curl/%s",
        b"libpng version %s",
        b"SQLite format 3\0" + b"3.40.1\0",  # no source id: not enough
        b"bzip2/libbzip2\0" + b"no version here",
    ],
)
def test_near_misses_are_not_fingerprints(strings: bytes) -> None:
    assert fingerprint(rodata_elf(strings)) == []


def test_sqlite_takes_the_version_nearest_to_its_source_id() -> None:
    source_id = (
        b"2023-11-24 11:41:44 ebead0e7230cd33bcec9f95d2183069565b9e709bf745c9b5db65cc0cbf92c0f"
    )
    strings = (
        b"3.1.4\0"
        + b"x" * 5000
        + b"\0SQLite format 3\0"
        + b"\x003.44.2\0"
        + source_id
        + b"\0"
        + b"y" * 300
        + b"\x003.0.0\0"
    )
    [(name, version, marker)] = fingerprint(rodata_elf(strings))
    assert (name, version) == ("sqlite", "3.44.2")
    assert marker == "3.44.2 " + source_id.decode()


def test_a_binary_with_two_zlibs_reports_both() -> None:
    strings = b" deflate 1.2.13 Copyright 1995-2022 J\0 inflate 1.3.1 Copyright 1995-2024 M\0"
    assert {(n, v) for n, v, _ in fingerprint(rodata_elf(strings))} == {
        ("zlib", "1.2.13"),
        ("zlib", "1.3.1"),
    }


versions = st.tuples(
    st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.sampled_from(["", "a", "zb"])
)


@given(versions, st.integers(1, 31), st.sampled_from(["Jan", "Sep"]), st.integers(1998, 2099))
def test_openssl_versions_round_trip(
    version: tuple[int, int, int, str], day: int, month: str, year: int
) -> None:
    text = f"{version[0]}.{version[1]}.{version[2]}{version[3]}"
    marker = f"OpenSSL {text} {day} {month} {year}".encode()
    assert fingerprint(rodata_elf(marker)) == [("openssl", text, marker.decode())]


@given(versions)
def test_busybox_and_zlib_versions_round_trip(version: tuple[int, int, int, str]) -> None:
    text = f"{version[0]}.{version[1]}.{version[2]}"
    strings = f"BusyBox v{text} (Debian)\0 inflate {text} Copyright 1995-2030 M".encode()
    assert {(n, v) for n, v, _ in fingerprint(rodata_elf(strings))} == {
        ("busybox", text),
        ("zlib", text),
    }


# --- malformed binaries never raise -----------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_truncated_and_corrupted_binaries_never_raise(data: st.DataObject) -> None:
    original = binkit.package_file("zlib1g", r"/libz\.so\.1\.\d").read_bytes()
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 16))):
        at = data.draw(st.integers(0, min(len(mutated) - 1, 4096)))
        mutated[at] = data.draw(st.integers(0, 255))
    sample = bytes(mutated[: data.draw(st.integers(0, len(mutated)))])
    for name, version, _ in fingerprint(sample):
        assert name == "zlib"
        assert version == binkit.upstream_version("zlib1g")


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(noise: bytes) -> None:
    for sample in (b"\x7fELF" + noise, b"MZ" + noise, rodata_elf(noise)):
        assert isinstance(fingerprint(sample), list)


# --- in the image BOM -------------------------------------------------------------------------


def test_fingerprints_of_files_an_os_package_owns_are_not_extras() -> None:
    # dpkg on a merged-/usr Debian 12 lists /lib/x86_64-linux-gnu/libz.so.1.2.13; the layer
    # holds the file at usr/lib/... (lib is a symlink to usr/lib).
    libz = binkit.package_file("zlib1g", r"/libz\.so\.1\.\d").read_bytes()
    static = binkit.static_fixtures() / "zlib-static"
    layer = tar_bytes(
        [
            file("usr/lib/x86_64-linux-gnu/libz.so.1.2.13", libz),
            file("usr/sbin/tool", static.read_bytes(), mode=0o755),
            file("opt/app/lib/libz.so.1", libz),
        ]
    )
    scan = scan_bytes(layer, [DETECTOR], media_type=OCI_TAR)
    assert len(scan.components) == 3
    scan.owned_paths = ["/lib/x86_64-linux-gnu/libz.so.1.2.13", "/sbin/tool"]
    image = ImageRef("sha256:" + "0" * 64, "linux/amd64", "linux", (layer_ref(layer, OCI_TAR),))
    bom = assemble(image, [scan])
    assert [(c.component.name, c.component.evidence) for c in bom.components] == [
        ("zlib", "opt/app/lib/libz.so.1")
    ]

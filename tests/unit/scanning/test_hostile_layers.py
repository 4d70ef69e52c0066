"""Hostile layers end as a clean `ScanRefused` that names the rule or limit, within bounded
memory: decompression bombs, paths escaping the layer, symlink loops, a million entries,
absurd paths, corrupt streams."""

from __future__ import annotations

import resource
import tarfile
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scanning.layerkit import (
    GIB,
    MIB,
    OCI_GZIP,
    OCI_ZSTD,
    GzipZeroBomb,
    Recorder,
    ZstdZeroBomb,
    as_binary,
    dpkg_status,
    file,
    gzip_bytes,
    hardlink,
    layer_ref,
    many_entries_layer,
    scan_bytes,
    symlink,
    tar_bytes,
    zstd_bytes,
)
from trustyard.scanning.detectors import default_detectors
from trustyard.scanning.interfaces import Limits
from trustyard.scanning.layers import check_symlinks, scan_layer
from trustyard.scanning.model import ScanRefused
from trustyard.scanning.sources import LayerRef

# How much the process may grow while it refuses a hostile layer.
MEMORY_BOUND = 200 * MIB


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@pytest.fixture
def bounded_memory() -> Iterator[None]:
    """The test must not raise the process's peak memory by more than MEMORY_BOUND, nor
    leave the decompression thread of a refused layer running."""
    before = peak_rss()
    yield
    grown = peak_rss() - before
    assert grown < MEMORY_BOUND, f"peak memory grew by {grown >> 20} MiB"
    assert [t.name for t in threading.enumerate() if t.name == "layer-inflate"] == []


def bomb_ref(media_type: str) -> LayerRef:
    return LayerRef(digest="sha256:" + "b" * 64, media_type=media_type, size=20 * MIB)


# --- decompression bombs ------------------------------------------------------------------


@pytest.mark.usefixtures("bounded_memory")
def test_a_gzip_bomb_is_refused_for_its_compression_ratio() -> None:
    bomb = GzipZeroBomb(20 * GIB)  # 20 GiB of zeros in about 20 MiB of gzip
    greedy = Recorder(suffixes=("bomb",), limit=64 << 30)
    with pytest.raises(ScanRefused) as refused:
        scan_layer(as_binary(bomb), bomb_ref(OCI_GZIP), [greedy], Limits())
    message = str(refused.value)
    assert message.startswith("layer's compression ratio is over 1000:1 (the max_ratio limit)")
    assert greedy.last.taken == []


@pytest.mark.usefixtures("bounded_memory")
def test_a_zstd_bomb_is_refused_for_its_compression_ratio() -> None:
    with pytest.raises(ScanRefused, match=r"compression ratio is over 1000:1"):
        scan_layer(as_binary(ZstdZeroBomb(20 * GIB)), bomb_ref(OCI_ZSTD), [], Limits())


@pytest.mark.usefixtures("bounded_memory")
def test_a_layer_over_the_size_limit_is_refused_whatever_its_ratio() -> None:
    limits = Limits(max_layer_bytes=96 * MIB, max_ratio=1 << 30)
    with pytest.raises(
        ScanRefused,
        match=r"^layer is larger than 100663296 bytes uncompressed \(the max_layer_bytes limit\)$",
    ):
        scan_layer(as_binary(GzipZeroBomb(1 * GIB)), bomb_ref(OCI_GZIP), [], limits)


def test_a_ratio_under_the_floor_is_fine() -> None:
    # 64 MiB of zeros compress 1000:1 too, but a layer that small is no threat.
    scan = scan_layer(as_binary(GzipZeroBomb(64 * MIB)), bomb_ref(OCI_GZIP), [], Limits())
    assert scan.files == 1
    assert scan.uncompressed_bytes == 512 + 64 * MIB + 1024  # header, content, end marker


def test_a_wanted_file_over_max_file_bytes_is_skipped_not_read_into_memory() -> None:
    greedy = Recorder(suffixes=("bomb",), limit=1 << 40)
    limits = Limits(max_file_bytes=8 * MIB)
    scan = scan_layer(as_binary(GzipZeroBomb(64 * MIB)), bomb_ref(OCI_GZIP), [greedy], limits)
    assert greedy.last.taken == []
    assert scan.notes == [f"bomb: {64 * MIB} bytes, over the {8 * MIB}-byte limit of recorder"]


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "./../../etc/passwd",
        "usr/../../etc/passwd",
        "usr/lib/../../..",
        "/etc/passwd",
        "//etc/passwd",
        "/",
    ],
)
def test_a_path_escaping_the_layer_is_refused(name: str) -> None:
    blob = gzip_bytes(tar_bytes([file("ok.txt", b"fine"), file(name, b"root::0:0::/root:")]))
    with pytest.raises(ScanRefused, match=r"^path .* escapes the layer$") as refused:
        scan_bytes(blob, [Recorder()])
    assert repr(name) in str(refused.value)


def test_a_symlink_or_hardlink_whose_name_escapes_is_refused_too() -> None:
    for member in (symlink("../evil", "/etc/passwd"), symlink("/evil", "x"), hardlink("/h", "x")):
        with pytest.raises(ScanRefused, match="escapes the layer"):
            scan_bytes(gzip_bytes(tar_bytes([member])))


@pytest.mark.parametrize(
    "name", ["./etc/passwd", "etc/./passwd", "etc//passwd", "etc/passwd/", "./././etc/passwd"]
)
def test_harmless_spellings_of_a_path_are_normalised(name: str) -> None:
    recorder = Recorder()
    scan_bytes(gzip_bytes(tar_bytes([file(name, b"x")])), [recorder])
    assert [t.entry.path for t in recorder.last.taken] == ["etc/passwd"]


def test_a_path_over_the_length_limit_is_refused() -> None:
    name = "a/" * 2100 + "x"  # 4201 bytes, in a pax header
    with pytest.raises(
        ScanRefused, match=r"a path of 4201 bytes, longer than 4096 \(the max_path_bytes limit\)"
    ):
        scan_bytes(gzip_bytes(tar_bytes([file(name, b"x")])))


def test_a_path_over_the_depth_limit_is_refused() -> None:
    name = "d/" * 300 + "x"
    with pytest.raises(ScanRefused, match=r"more than 256 directories deep"):
        scan_bytes(gzip_bytes(tar_bytes([file(name, b"x")])))
    ok = "d/" * 256 + "x"
    assert scan_bytes(gzip_bytes(tar_bytes([file(ok, b"x")]))).files == 1


def test_a_huge_extended_header_is_refused_before_it_is_read() -> None:
    info = tarfile.TarInfo("x")
    info.type = tarfile.XHDTYPE
    info.size = 1 << 40
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(ScanRefused, match="extended tar header of 1099511627776 bytes"):
        scan_bytes(gzip_bytes(header + bytes(1024)))


# --- symlinks -------------------------------------------------------------------------------


def test_a_symlink_loop_is_refused_with_the_loop() -> None:
    members = [symlink("a", "b"), symlink("b", "a"), file("c", b"x")]
    with pytest.raises(ScanRefused, match=r"^symlink loop: a -> b -> a$"):
        scan_bytes(gzip_bytes(tar_bytes(members)))


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({"self": "self"}, "symlink loop: self -> self"),
        ({"usr/bin/x": "../../usr/bin/x"}, "symlink loop: usr/bin/x -> usr/bin/x"),
        ({"a": "/b", "b": "../../../c", "c": "./a"}, "symlink loop: a -> b -> c -> a"),
        ({"dir": "dir/sub"}, "symlink loop: dir -> dir"),
        ({"d1": "d2/x", "d2": "d1/y"}, "symlink loop: d1 -> d2 -> d1"),
    ],
)
def test_symlink_loops_through_absolute_relative_and_directory_links(
    links: dict[str, str], message: str
) -> None:
    with pytest.raises(ScanRefused) as refused:
        check_symlinks(links, 40)
    assert str(refused.value) == message


def test_a_symlink_chain_longer_than_the_hop_limit_is_refused() -> None:
    links = {f"l{i}": f"l{i + 1}" for i in range(41)}
    with pytest.raises(ScanRefused, match=r"symlink chain longer than 40 hops"):
        check_symlinks(links, 40)
    del links["l40"]  # a chain of 40 links is fine
    check_symlinks(links, 40)


def test_links_out_of_the_layer_are_clamped_at_its_root() -> None:
    # "../../.." from the root stays at the root, so this resolves to "a": a loop inside.
    with pytest.raises(ScanRefused, match=r"^symlink loop: x/a -> a -> x/a$"):
        check_symlinks({"x/a": "../../../../a", "a": "x/a"}, 40)
    check_symlinks({"x/a": "../../../../etc/shadow"}, 40)


# --- a million tiny entries ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("bounded_memory")
def test_a_million_tiny_entries_are_refused_at_the_entry_limit() -> None:
    path = many_entries_layer(1_000_000)
    recorder = Recorder(suffixes=("never",), count_only=True)
    with path.open("rb") as stream, pytest.raises(ScanRefused) as refused:
        scan_layer(stream, layer_ref(b"many", OCI_GZIP), [recorder], Limits())
    assert str(refused.value) == "layer has more than 500000 entries (the max_entries limit)"
    assert recorder.last.seen_count == 500_000


def test_the_entry_limit_counts_every_member() -> None:
    members = [symlink(f"l{i}", "x") for i in range(10)] + [file("f", b"")]
    with pytest.raises(ScanRefused, match="more than 10 entries"):
        scan_bytes(gzip_bytes(tar_bytes(members)), limits=Limits(max_entries=10))


# --- corrupt streams ------------------------------------------------------------------------

GOOD = tar_bytes([file("etc/hostname", b"box\n" * 1000), file("etc/motd", b"hi")])


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (gzip_bytes(GOOD)[:-30], "gzip: the stream is truncated"),
        (_flip(gzip_bytes(GOOD), len(gzip_bytes(GOOD)) - 6), "gzip: Error"),
        (zstd_bytes(GOOD)[:-20], "zstd"),
        (_flip(GOOD, 10), "bad tar header checksum"),
        (GOOD[:1500], "unexpected end of stream"),
        (GOOD[:512], "unexpected end of stream"),
        (b'{"not": "a layer"}' + bytes(600), "bad tar header checksum"),
        (gzip_bytes(b"\x00" * 100), "unexpected end of stream inside a tar header"),
    ],
    ids=[
        "gzip-truncated",
        "gzip-bad-crc",
        "zstd-truncated",
        "tar-checksum",
        "tar-truncated-content",
        "tar-truncated-header",
        "json",
        "short-zeros",
    ],
)
def test_a_corrupt_layer_is_refused_as_not_a_valid_stream(blob: bytes, reason: str) -> None:
    with pytest.raises(ScanRefused) as refused:
        scan_bytes(blob, [Recorder()])
    message = str(refused.value)
    assert message.startswith("layer is not a valid tar/gzip/zstd stream: ")
    assert reason in message


def test_an_empty_blob_is_refused() -> None:
    with pytest.raises(ScanRefused, match="not a valid tar/gzip/zstd stream"):
        scan_bytes(b"")


def test_gzip_padding_after_the_last_member_is_ignored() -> None:
    scan = scan_bytes(gzip_bytes(GOOD) + bytes(4096), [Recorder()])
    assert scan.files == 2


def test_the_checksum_is_verified_over_the_raw_header() -> None:
    header = bytearray(GOOD[:512])
    header[0:1] = b"E"  # the name changes, the checksum does not
    with pytest.raises(ScanRefused, match="bad tar header checksum"):
        scan_bytes(bytes(header) + GOOD[512:])


SAMPLE = tar_bytes(
    [
        file("usr/bin/tool", b"\x7fELF" + bytes(700)),
        symlink("bin", "usr/bin"),
        file("a/" * 60 + "long-name.txt", b"pax or gnu"),
        file("etc/.wh.gone"),
    ],
    tarfile.GNU_FORMAT,
) + tar_bytes([file("x" * 150, b"pax")], tarfile.PAX_FORMAT)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, len(SAMPLE)),
    wrap=st.sampled_from(["tar", "gzip", "zstd"]),
)
def test_damaged_layers_end_in_scan_refused_or_a_scan_never_another_error(
    edits: list[tuple[int, int]], cut: int, wrap: str
) -> None:
    damaged = bytearray(SAMPLE[:cut])
    for at, value in edits:
        if at < len(damaged):
            damaged[at] = value
    blob = bytes(damaged)
    if wrap == "gzip":
        blob = gzip_bytes(blob)
    elif wrap == "zstd":
        blob = zstd_bytes(blob)
    try:
        scan = scan_bytes(blob, [Recorder()])
    except ScanRefused:
        return  # a clean refusal: the only way a layer may fail
    assert scan.files <= 4


# --- what one scan may make: metadata files and components -----------------------------------

METADATA_FILES = [
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d/base-files",
    "var/lib/dpkg/info/libc6:amd64.list",
    "lib/apk/db/installed",
    "app/package-lock.json",
    "app/node_modules/.package-lock.json",
    "app/bin/App.deps.json",
    "usr/lib/python3/dist-packages/pkg-1.0.dist-info/METADATA",
    "usr/lib/python3/dist-packages/pkg-1.0.dist-info/RECORD",
    "app/vendor/composer/installed.json",
]


@pytest.mark.parametrize("path", METADATA_FILES)
def test_a_metadata_file_past_its_limit_is_refused(path: str) -> None:
    blob = gzip_bytes(tar_bytes([file(path, b"x" * 1025)]))
    expected = f"{path} is 1025 bytes, more than 1024 (the max_metadata_bytes limit)"
    with pytest.raises(ScanRefused) as refused:
        scan_bytes(blob, default_detectors(), limits=Limits(max_metadata_bytes=1024))
    assert str(refused.value) == expected
    # at the limit, the file is read
    scan_bytes(
        gzip_bytes(tar_bytes([file(path, b"x" * 1024)])),
        default_detectors(),
        limits=Limits(max_metadata_bytes=1024),
    )


def test_an_rpm_database_past_its_limit_is_refused() -> None:
    blob = gzip_bytes(tar_bytes([file("var/lib/rpm/rpmdb.sqlite", b"x" * 2048)]))
    with pytest.raises(ScanRefused) as refused:
        scan_bytes(blob, default_detectors(), limits=Limits(max_rpmdb_bytes=2047))
    assert str(refused.value) == (
        "var/lib/rpm/rpmdb.sqlite is 2048 bytes, more than 2047 (the max_rpmdb_bytes limit)"
    )


@pytest.mark.usefixtures("bounded_memory")
def test_the_dpkg_status_of_the_review_is_refused_by_its_size() -> None:
    """Issue 9: 300,000 entries (about 40 MB) in a 1 MB layer made a 1.1 GB scan."""
    data = dpkg_status(300_000)
    blob = gzip_bytes(tar_bytes([file("var/lib/dpkg/status", data)]))
    with pytest.raises(ScanRefused) as refused:
        scan_bytes(blob, default_detectors())
    assert str(refused.value) == (
        f"var/lib/dpkg/status is {len(data)} bytes, more than 16777216 "
        "(the max_metadata_bytes limit)"
    )


@pytest.mark.usefixtures("bounded_memory")
def test_a_dpkg_status_under_the_size_limit_stops_at_the_component_limit() -> None:
    data = dpkg_status(50_001)  # about 3.7 MB
    blob = gzip_bytes(tar_bytes([file("var/lib/dpkg/status", data)]))
    with pytest.raises(ScanRefused) as refused:
        scan_bytes(blob, default_detectors())
    assert str(refused.value) == (
        "the layer has more than 50000 components (the max_layer_components limit)"
    )
    assert (
        len(
            scan_bytes(
                gzip_bytes(tar_bytes([file("var/lib/dpkg/status", dpkg_status(50_000))])),
                default_detectors(),
            ).components
        )
        == 50_000
    )


def test_components_of_every_detector_count_towards_the_layer_limit() -> None:
    members = [
        file(
            f"usr/lib/python3/dist-packages/p{index}-1.0.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: p%d\nVersion: 1.0\n" % index,
        )
        for index in range(6)
    ]
    members.append(file("var/lib/dpkg/status", dpkg_status(5)))
    blob = gzip_bytes(tar_bytes(members))
    assert len(scan_bytes(blob, default_detectors()).components) == 11
    with pytest.raises(ScanRefused) as refused:
        scan_bytes(blob, default_detectors(), limits=Limits(max_layer_components=10))
    assert str(refused.value) == (
        "the layer has more than 10 components (the max_layer_components limit)"
    )

"""The layer walker: what detectors are offered and given, what a layer deletes, the same
result whatever the compression, and Windows layers. The tar reader and the decompression have
tests of their own (test_tarstream.py, test_decompress.py)."""

from __future__ import annotations

import random
import tarfile
from collections.abc import Callable

import pytest

from tests.unit.scanning.layerkit import (
    DOCKER_GZIP,
    ELF,
    LAYER,
    OCI_GZIP,
    OCI_TAR,
    OCI_ZSTD,
    Recorder,
    directory,
    file,
    gzip_bytes,
    scan_bytes,
    symlink,
    tar_bytes,
    zstd_bytes,
)
from trustyard.scanning.interfaces import HEAD_BYTES, Limits
from trustyard.scanning.model import Distro, LayerScan, ScanRefused


def content_of(scan: LayerScan) -> dict[str, object]:
    data = scan.to_json()
    del data["media_type"]
    del data["digest"]
    return data


# --- what detectors see -------------------------------------------------------------------


def test_every_regular_file_is_offered_with_its_normalised_path_size_mode_and_head() -> None:
    recorder = Recorder(suffixes=("nothing",))
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [recorder])
    seen = {e.path: e for e in recorder.last.seen}
    assert sorted(seen) == ["empty.txt", "etc/os-release", "usr/bin/tool"]
    tool = seen["usr/bin/tool"]
    assert (tool.size, tool.mode, tool.head) == (len(ELF), 0o755, ELF[:HEAD_BYTES])
    assert tool.executable
    assert tool.name == "tool"
    assert seen["empty.txt"].head == b""
    assert seen["etc/os-release"].head == b"ID=debian\nVERSION_ID=12\n"
    assert scan.files == 3
    assert recorder.last.taken == []
    assert scan.evidence_paths == []
    assert scan.uncompressed_bytes == len(tar_bytes(LAYER))


def test_content_is_read_once_and_given_to_every_collector_that_wants_it() -> None:
    elf = Recorder(name="elf", suffixes=("tool",))
    both = Recorder(name="both", suffixes=("tool", "os-release"))
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [elf, both])
    assert [(t.entry.path, t.data) for t in elf.last.taken] == [("usr/bin/tool", ELF)]
    assert [t.entry.path for t in both.last.taken] == ["usr/bin/tool", "etc/os-release"]
    assert both.last.taken[1].data == b"ID=debian\nVERSION_ID=12\n"
    assert scan.evidence_paths == ["usr/bin/tool", "etc/os-release"]
    assert [(c.name, c.version, c.detector) for c in scan.components] == [
        ("usr/bin/tool", str(len(ELF)), "elf"),
        ("usr/bin/tool", str(len(ELF)), "both"),
        ("etc/os-release", "24", "both"),
    ]


def test_an_empty_file_is_given_as_empty_bytes() -> None:
    recorder = Recorder(suffixes=("empty.txt",))
    scan_bytes(gzip_bytes(tar_bytes(LAYER)), [recorder])
    assert [(t.entry.path, t.data) for t in recorder.last.taken] == [("empty.txt", b"")]


def test_a_file_over_a_collectors_limit_is_not_given_and_a_note_says_so() -> None:
    small = Recorder(name="small", suffixes=("tool",), limit=100)
    large = Recorder(name="large", suffixes=("tool",), limit=1000)
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [small, large])
    assert small.last.taken == []
    assert [t.data for t in large.last.taken] == [ELF]
    assert scan.notes == [f"usr/bin/tool: {len(ELF)} bytes, over the 100-byte limit of small"]


def test_the_max_file_bytes_limit_caps_what_any_collector_asks_for() -> None:
    greedy = Recorder(name="greedy", suffixes=("tool",), limit=1 << 40)
    limits = Limits(max_file_bytes=64)
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [greedy], limits=limits)
    assert greedy.last.taken == []
    assert scan.notes == [f"usr/bin/tool: {len(ELF)} bytes, over the 64-byte limit of greedy"]


def test_links_and_special_files_are_never_offered_nor_followed() -> None:
    recorder = Recorder(suffixes=("",))
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [recorder])
    taken = [t.entry.path for t in recorder.last.taken]
    for never in ("bin/tool", "usr/bin/tool2", "dev/null", "run/fifo"):
        assert never not in taken
    assert sorted(taken) == ["empty.txt", "etc/os-release", "usr/bin/tool"]
    assert scan.files == 3


def test_owned_paths_and_distro_come_from_the_collectors_that_know_them() -> None:
    debian = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    dpkg_like = Recorder(name="dpkg", suffixes=("nothing",), owned=("usr/bin/tool", "bin/sh"))
    os_like = Recorder(name="os-release", suffixes=("os-release",), found_distro=debian)
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [dpkg_like, os_like])
    assert scan.owned_paths == ["usr/bin/tool", "bin/sh"]
    assert scan.distro == debian


def test_a_detector_that_raises_costs_a_note_not_the_layer() -> None:
    fragile = Recorder(name="fragile", suffixes=("tool", "os-release"), fail_on="tool")
    steady = Recorder(name="steady", suffixes=("tool",))
    scan = scan_bytes(gzip_bytes(tar_bytes(LAYER)), [fragile, steady])
    assert scan.notes == ["usr/bin/tool: fragile failed: ValueError: malformed on purpose"]
    assert [(c.name, c.detector) for c in scan.components] == [
        ("etc/os-release", "fragile"),
        ("usr/bin/tool", "steady"),
    ]


# --- what the layer deletes ---------------------------------------------------------------


def test_whiteouts_and_opaque_directories_are_recorded_and_not_offered() -> None:
    members = [
        file("etc/.wh.passwd"),
        file(".wh.tmp"),
        directory("var/cache/apt"),
        file("var/cache/apt/.wh..wh..opq"),
        file(".wh..wh..opq"),
        file("usr/.wh..wh.plnk"),  # aufs hard-link metadata: neither
        file("usr/lib/.wh.libgone.so.1"),
        file("usr/lib/libkept.so.1", b"kept"),
    ]
    recorder = Recorder()
    scan = scan_bytes(gzip_bytes(tar_bytes(members)), [recorder])
    assert scan.whiteouts == ["etc/passwd", "tmp", "usr/lib/libgone.so.1"]
    assert scan.opaque_dirs == ["var/cache/apt", ""]
    assert [t.entry.path for t in recorder.last.taken] == ["usr/lib/libkept.so.1"]
    assert scan.files == 1


# --- compression ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "compress"),
    [
        (OCI_TAR, lambda data: data),
        (OCI_ZSTD, zstd_bytes),
        (DOCKER_GZIP, gzip_bytes),
        (OCI_GZIP, lambda data: gzip_bytes(data, members=3)),
    ],
    ids=["tar", "zstd", "docker-gzip", "multi-member-gzip"],
)
def test_every_compression_gives_the_same_scan_as_gzip(
    media_type: str, compress: Callable[[bytes], bytes]
) -> None:
    raw = tar_bytes([*LAYER, file("etc/.wh.gone"), file("big.bin", bytes(range(256)) * 9000)])
    reference = scan_bytes(gzip_bytes(raw), [Recorder(limit=4 << 20)])
    scan = scan_bytes(compress(raw), [Recorder(limit=4 << 20)], media_type=media_type)
    assert scan.media_type == media_type
    assert content_of(scan) == content_of(reference)
    assert scan.notes == []


def test_the_content_decides_the_compression_and_a_wrong_media_type_is_noted() -> None:
    raw = tar_bytes(LAYER)
    scan = scan_bytes(raw, [Recorder()], media_type=OCI_GZIP)
    assert content_of(scan)["files"] == 3
    assert scan.notes == [f"media type {OCI_GZIP} says gzip, the content is tar"]


def test_progress_is_reported_in_compressed_bytes_up_to_the_whole_blob() -> None:
    noise = random.Random(5).randbytes(1 << 20)  # incompressible: the blob stays large
    raw = tar_bytes([file(f"f{i}", noise) for i in range(20)])
    blob = gzip_bytes(raw)
    assert len(blob) > 16 << 20
    seen: list[int] = []
    scan_bytes(blob, [], progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == len(blob)
    assert len(seen) >= 3  # every 8 MiB, and at the end


# --- Windows layers -------------------------------------------------------------------------


def test_windows_layers_drop_the_files_prefix_and_ignore_hives() -> None:
    members = [
        directory("Files"),
        directory("Files/Windows"),
        file("Files/Windows/System32/app.exe", b"MZ\x90\x00"),
        file("Files/ProgramData/.wh.old.txt"),
        file("Hives/Software_Delta", b"regf"),
        file("UtilityVM/Files/boot.bin", b"boot"),
    ]
    recorder = Recorder()
    scan = scan_bytes(gzip_bytes(tar_bytes(members)), [recorder], windows=True)
    assert [t.entry.path for t in recorder.last.taken] == ["Windows/System32/app.exe"]
    assert scan.evidence_paths == ["Windows/System32/app.exe"]
    assert scan.whiteouts == ["ProgramData/old.txt"]
    assert scan.files == 1


def test_a_windows_layer_path_with_a_backslash_is_refused() -> None:
    members = [file("Files/Windows\\..\\..\\evil.exe", b"MZ")]
    with pytest.raises(ScanRefused, match="contains a backslash"):
        scan_bytes(gzip_bytes(tar_bytes(members)), windows=True)


def test_a_backslash_is_an_ordinary_character_in_a_linux_layer() -> None:
    name = "etc/systemd/system/dev-disk-by\\x2duuid.swap"
    recorder = Recorder()
    scan_bytes(gzip_bytes(tar_bytes([file(name, b"[Swap]")])), [recorder])
    assert [t.entry.path for t in recorder.last.taken] == [name]


# --- links that stay inside -----------------------------------------------------------------


def test_ordinary_symlinks_pass_the_loop_check() -> None:
    members = [
        symlink("bin", "usr/bin"),
        symlink("lib64", "usr/lib64"),
        symlink("usr/lib64/ld.so", "/lib/x86_64/ld.so"),
        symlink("usr/bin/X11", "."),
        symlink("etc/mtab", "../proc/self/mounts"),
        symlink("usr/bin/vi", "/etc/alternatives/vi"),
        symlink("etc/alternatives/vi", "/usr/bin/vim.basic"),
        symlink("escape", "../../../../etc/shadow"),  # clamped at the root: stays inside
        symlink("dangling", "nowhere/at/all"),
    ]
    scan = scan_bytes(gzip_bytes(tar_bytes(members)))
    assert scan.files == 0
    assert scan.notes == []


def test_a_tar_that_ends_without_its_end_marker_is_read_as_tar_reads_it() -> None:
    raw = tar_bytes([file("a", b"1"), file("b", b"2")])
    unmarked = raw[: 4 * 512]  # two headers, two content blocks, no zero blocks
    recorder = Recorder()
    scan = scan_bytes(gzip_bytes(unmarked), [recorder])
    assert [(t.entry.path, t.data) for t in recorder.last.taken] == [("a", b"1"), ("b", b"2")]
    assert scan.files == 2


def test_a_gnu_sparse_file_is_skipped_and_the_walk_goes_on() -> None:
    sparse = tarfile.TarInfo("holes.img")
    sparse.type = tarfile.GNUTYPE_SPARSE
    sparse.size = 1024  # the data stored in the archive
    header = bytearray(sparse.tobuf(format=tarfile.GNU_FORMAT))
    header[482] = 1  # one extended sparse header follows
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)
    extension = bytes(512)  # its own "isextended" byte (504) is 0: the last one
    raw = bytes(header) + extension + bytes(1024) + tar_bytes([file("after", b"ok")])
    recorder = Recorder()
    scan = scan_bytes(gzip_bytes(raw), [recorder])
    assert [(t.entry.path, t.data) for t in recorder.last.taken] == [("after", b"ok")]
    assert scan.files == 1

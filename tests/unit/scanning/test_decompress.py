"""Decompression of a layer (decompress.py): the content's magic number decides gzip, zstd or
plain tar; what the media type says is only compared; compressions the scanner does not read
are refused by name; a truncated or corrupt stream is refused, threaded or not."""

from __future__ import annotations

import io
import random

import pytest

from tests.unit.scanning.layerkit import file, gzip_bytes, tar_bytes, zstd_bytes
from trustyard.scanning.decompress import (
    GZIP,
    TAR,
    ZSTD,
    media_type_compression,
    open_chunks,
    sniff,
)
from trustyard.scanning.interfaces import Limits
from trustyard.scanning.model import ScanRefused
from trustyard.scanning.tarstream import TarStream

RAW = tar_bytes([file("a.bin", random.Random(3).randbytes(300_000)), file("b.txt", b"b" * 9000)])


def inflate(blob: bytes, *, threaded: bool) -> tuple[str, bytes, int]:
    """The compression sniffed, every decompressed byte, and the compressed bytes counted."""
    compression, chunks, prefetch = open_chunks(io.BytesIO(blob), threaded=threaded)
    try:
        parts = []
        while chunk := chunks.next():
            parts.append(chunk)
        return compression, b"".join(parts), chunks.compressed
    finally:
        if prefetch is not None:
            prefetch.close()


def walk(stream: TarStream) -> None:
    with stream:
        while stream.next() is not None:
            pass


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("application/vnd.oci.image.layer.v1.tar", "tar"),
        ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
        ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "gzip"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", "tar"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", "zstd"),
        ("application/vnd.docker.image.rootfs.diff.tar", "tar"),
        ("application/octet-stream", None),
    ],
)
def test_media_types_name_their_compression(media_type: str, expected: str | None) -> None:
    assert media_type_compression(media_type) == expected


@pytest.mark.parametrize(
    ("head", "name"),
    [(b"BZh91AY", "bzip2"), (b"\xfd7zXZ\x00\x00", "xz"), (b"\x04\x22\x4d\x18\x00", "lz4")],
)
def test_compressions_the_scanner_does_not_read_are_refused_by_name(head: bytes, name: str) -> None:
    with pytest.raises(ScanRefused, match=f"compressed with {name}"):
        sniff(head)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x1f\x8b\x08\x00", GZIP),
        (b"\x28\xb5\x2f\xfd\x04", ZSTD),
        (b"./etc/os-release\x00", TAR),
        (b"", TAR),
        (b"\x1f", TAR),  # half a gzip magic is not gzip
    ],
)
def test_the_magic_number_decides(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "threaded"])
@pytest.mark.parametrize(
    ("compress", "expected"),
    [
        (lambda data: data, TAR),
        (gzip_bytes, GZIP),
        (lambda data: gzip_bytes(data, members=3), GZIP),
        (zstd_bytes, ZSTD),
    ],
    ids=["tar", "gzip", "multi-member-gzip", "zstd"],
)
def test_every_compression_gives_back_the_tar_and_counts_every_compressed_byte(
    compress: object, expected: str, threaded: bool
) -> None:
    assert callable(compress)
    blob: bytes = compress(RAW)
    assert inflate(blob, threaded=threaded) == (expected, RAW, len(blob))


def test_zeros_after_the_last_gzip_member_end_the_stream() -> None:
    blob = gzip_bytes(RAW) + bytes(4096)
    compression, data, _ = inflate(blob, threaded=False)
    assert (compression, data) == (GZIP, RAW)


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "threaded"])
def test_a_truncated_gzip_stream_is_refused(threaded: bool) -> None:
    blob = gzip_bytes(RAW)
    with pytest.raises(ScanRefused, match="not a valid tar/gzip/zstd stream: gzip"):
        inflate(blob[: len(blob) // 2], threaded=threaded)


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "threaded"])
def test_a_truncated_zstd_stream_ends_early_and_the_tar_reader_refuses_it(
    threaded: bool,
) -> None:
    # zstandard's stream reader ends a cut frame quietly: what came out is a prefix of the
    # tar, and the tar reader (which knows how long each member is) refuses the layer.
    blob = zstd_bytes(RAW)
    cut = blob[: len(blob) // 2]
    compression, data, _ = inflate(cut, threaded=threaded)
    assert compression == ZSTD
    assert len(data) < len(RAW)
    assert RAW.startswith(data)
    with pytest.raises(ScanRefused, match="unexpected end of stream"):
        walk(TarStream(io.BytesIO(cut), Limits(), threaded=threaded))


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "threaded"])
def test_a_corrupt_gzip_stream_is_refused(threaded: bool) -> None:
    blob = bytearray(gzip_bytes(RAW))
    blob[20:40] = bytes(20)
    with pytest.raises(ScanRefused, match="not a valid tar/gzip/zstd stream: gzip"):
        inflate(bytes(blob), threaded=threaded)


def test_a_stream_in_a_compression_the_scanner_does_not_read_is_refused_before_reading() -> None:
    with pytest.raises(ScanRefused, match="compressed with xz"):
        open_chunks(io.BytesIO(b"\xfd7zXZ\x00\x00" + bytes(100)))

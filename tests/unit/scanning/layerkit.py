"""Layers built in tests (tar members, compressed three ways, hostile ones generated as
streams) and a test-only detector that records what the layer walker gives it."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from trustyard.scanning.interfaces import Collector, Detector, FileEntry, Limits, ScanContext
from trustyard.scanning.layers import scan_layer
from trustyard.scanning.model import Component, Distro, LayerScan
from trustyard.scanning.sources import LayerRef

OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FIXTURES = Path(os.environ.get("TRUSTYARD_SCAN_FIXTURES", "/var/cache/trustyard/scan-fixtures"))
GIB = 1 << 30
MIB = 1 << 20


# --- members and archives --------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes = b""
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o644


def file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    return Member(name, data, tarfile.REGTYPE, "", mode)


def directory(name: str) -> Member:
    return Member(name, b"", tarfile.DIRTYPE, "", 0o755)


def symlink(name: str, target: str) -> Member:
    return Member(name, b"", tarfile.SYMTYPE, target, 0o777)


def hardlink(name: str, target: str) -> Member:
    return Member(name, b"", tarfile.LNKTYPE, target, 0o644)


# A layer with one of each kind of member (the layer walker's and the tar reader's tests).
ELF = b"\x7fELF\x02\x01\x01" + bytes(200)
LAYER = [
    directory("./"),
    directory("./usr/"),
    directory("./usr/bin/"),
    file("./usr/bin/tool", ELF, 0o755),
    file("./etc/os-release", b"ID=debian\nVERSION_ID=12\n"),
    file("./empty.txt", b""),
    symlink("./bin", "usr/bin"),
    hardlink("./usr/bin/tool2", "./usr/bin/tool"),
    Member("./dev/null", kind=tarfile.CHRTYPE),
    Member("./run/fifo", kind=tarfile.FIFOTYPE),
]


def tar_bytes(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.kind
            info.mode = member.mode
            info.linkname = member.linkname
            info.mtime = 1_700_000_000
            if member.kind == tarfile.REGTYPE:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def dpkg_status(entries: int) -> bytes:
    """A dpkg status file of `entries` installed packages (about 75 bytes each)."""
    return b"".join(
        b"Package: p%d\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.%d\n\n"
        % (index, index)
        for index in range(entries)
    )


def gzip_bytes(data: bytes, members: int = 1) -> bytes:
    """gzip, in `members` members (what pigz or a concatenation of gzip files makes)."""
    step = max(1, -(-len(data) // members))
    return b"".join(gzip.compress(data[i : i + step], mtime=0) for i in range(0, len(data), step))


def zstd_bytes(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_ref(blob: bytes, media_type: str = OCI_GZIP) -> LayerRef:
    return LayerRef(digest=digest_of(blob), media_type=media_type, size=len(blob))


def scan_bytes(
    blob: bytes,
    detectors: Sequence[Detector] = (),
    *,
    media_type: str = OCI_GZIP,
    limits: Limits | None = None,
    windows: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LayerScan:
    return scan_layer(
        io.BytesIO(blob),
        layer_ref(blob, media_type),
        detectors,
        limits or Limits(),
        windows=windows,
        progress=progress,
    )


# --- a detector that records ------------------------------------------------------------------


@dataclass
class Taken:
    entry: FileEntry
    data: bytes


@dataclass
class RecordingCollector:
    """Wants the files whose name ends with one of `suffixes` (up to `limit` bytes); finds
    one component per file taken (name = path, version = size)."""

    name: str
    suffixes: tuple[str, ...]
    limit: int
    seen: list[FileEntry] = field(default_factory=list)
    taken: list[Taken] = field(default_factory=list)
    owned: tuple[str, ...] = ()
    found_distro: Distro | None = None
    fail_on: str | None = None
    count_only: bool = False  # remember how many files were offered, not which
    seen_count: int = 0

    def wants(self, entry: FileEntry) -> int:
        self.seen_count += 1
        if not self.count_only:
            self.seen.append(entry)
        return self.limit if entry.path.endswith(self.suffixes) else 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        if self.fail_on is not None and entry.path.endswith(self.fail_on):
            raise ValueError("malformed on purpose")
        self.taken.append(Taken(entry, data))

    def finish(self) -> Iterable[Component]:
        return [
            Component("test", t.entry.path, str(len(t.data)), "", (t.entry.path,), self.name)
            for t in self.taken
        ]

    def owned_paths(self) -> Iterable[str]:
        return self.owned

    def distro(self) -> Distro | None:
        return self.found_distro if self.taken else None  # as if it had read an os-release


@dataclass
class Recorder:
    """A Detector whose collectors are kept for the test to look at."""

    name: str = "recorder"
    suffixes: tuple[str, ...] = ("",)
    limit: int = 1 << 20
    owned: tuple[str, ...] = ()
    found_distro: Distro | None = None
    fail_on: str | None = None
    count_only: bool = False
    collectors: list[RecordingCollector] = field(default_factory=list)

    def collector(self, context: ScanContext) -> Collector:
        collector = RecordingCollector(
            self.name,
            self.suffixes,
            self.limit,
            owned=self.owned,
            found_distro=self.found_distro,
            fail_on=self.fail_on,
            count_only=self.count_only,
        )
        self.collectors.append(collector)
        return collector

    @property
    def last(self) -> RecordingCollector:
        return self.collectors[-1]


# --- hostile layers, generated as streams ---------------------------------------------------


class GzipZeroBomb(io.RawIOBase):
    """A gzip layer holding one file of `size` zero bytes, produced as it is read (nothing
    is held in memory or on disk): raw deflate, where a block of 8 MiB of zeros compressed
    once after a full flush repeats byte for byte. The trailer (its CRC needs every byte) is
    computed only if a reader gets that far."""

    BLOCK = 8 * MIB
    GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"

    def __init__(self, size: int = 20 * GIB, name: str = "bomb") -> None:
        super().__init__()
        assert size % self.BLOCK == 0
        self._size = size
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        info = tarfile.TarInfo(name)
        info.size = size
        self._tar_header = info.tobuf(format=tarfile.PAX_FORMAT)
        head = compressor.compress(self._tar_header) + compressor.flush(zlib.Z_FULL_FLUSH)
        self._block = compressor.compress(bytes(self.BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
        self._compressor: zlib._Compress | None = compressor
        self._blocks_left = size // self.BLOCK - 1  # the one compressed above comes first
        self._pending = self.GZIP_HEADER + head + self._block

    def readable(self) -> bool:
        return True

    def _refill(self) -> None:
        if self._blocks_left > 0:
            count = min(self._blocks_left, 64)
            self._blocks_left -= count
            self._pending = self._block * count
        elif self._compressor is not None:
            # The end: the tar's end-of-archive zeros, then the gzip trailer over it all.
            tail = bytes(2 * tarfile.BLOCKSIZE)
            deflated = self._compressor.compress(tail) + self._compressor.flush()
            self._compressor = None
            crc = zlib.crc32(self._tar_header)
            zeros = bytes(self.BLOCK)
            for _ in range(self._size // self.BLOCK):
                crc = zlib.crc32(zeros, crc)
            crc = zlib.crc32(tail, crc)
            total = len(self._tar_header) + self._size + len(tail)
            self._pending = (
                deflated + crc.to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little")
            )

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._refill()
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class ZstdZeroBomb(io.RawIOBase):
    """The same as zstd frames: one frame of 256 MiB of zeros, compressed once, repeats
    (a reader reads across frames as one stream)."""

    FRAME = 256 * MIB

    def __init__(self, size: int = 20 * GIB) -> None:
        super().__init__()
        assert size % self.FRAME == 0
        info = tarfile.TarInfo("bomb")
        info.size = size
        compressor = zstandard.ZstdCompressor(level=1)
        self._frame = compressor.compress(bytes(self.FRAME))
        self._frames_left = size // self.FRAME
        self._tail = compressor.compress(bytes(2 * tarfile.BLOCKSIZE))
        self._pending = compressor.compress(info.tobuf(format=tarfile.PAX_FORMAT))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            if self._frames_left:
                self._frames_left -= 1
                self._pending = self._frame
            else:
                self._pending, self._tail = self._tail, b""
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def as_binary(raw: io.RawIOBase) -> BinaryIO:
    return io.BufferedReader(raw, buffer_size=MIB)


def many_entries_layer(count: int = 1_000_000) -> Path:
    """A gzip layer of `count` empty files (f0000000, f0000001...), raw ustar headers from a
    template, built once and cached under the scan fixtures folder."""
    path = FIXTURES / "many-entries" / f"{count}.tar.gz"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    template = bytearray(tarfile.TarInfo("f0000000").tobuf(format=tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    base = sum(template) - sum(template[0:8])
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    temp = path.with_suffix(f".tmp{os.getpid()}")
    with temp.open("wb") as out:
        batch: list[bytes] = []
        for i in range(count):
            name = b"f%07d" % i
            header = template[:]
            header[0:8] = name
            header[148:156] = b"%06o\x00 " % (base + sum(name))
            batch.append(bytes(header))
            if len(batch) == 8192:
                out.write(compressor.compress(b"".join(batch)))
                batch.clear()
        batch.append(bytes(2 * tarfile.BLOCKSIZE))
        out.write(compressor.compress(b"".join(batch)))
        out.write(compressor.flush())
    temp.replace(path)
    return path

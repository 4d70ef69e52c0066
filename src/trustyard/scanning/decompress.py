"""Decompressing a layer as a stream, chosen by its magic number (gzip, zstd or none) with
the media type only noted when it disagrees: `open_chunks` gives the decompressed bytes in
chunks of at most `OUT_BYTES`, and how many compressed bytes they came from (for the ratio
limit and progress). gzip and zstd run on a thread of their own, a few chunks ahead.
"""

from __future__ import annotations

import importlib
import queue
import threading
import zlib
from typing import Any, BinaryIO, Final, Protocol, cast

import zstandard

from trustyard.scanning.interfaces import MIB
from trustyard.scanning.model import ScanRefused

IN_BYTES: Final = 1 * MIB  # compressed bytes read at a time
OUT_BYTES: Final = 4 * MIB  # the most one decompression step produces
ZSTD_MAX_WINDOW: Final = 128 * MIB  # zstd's own default limit, made explicit

GZIP: Final = "gzip"
ZSTD: Final = "zstd"
TAR: Final = "tar"

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC: Final = (
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x89LZO", "lzo"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


def invalid(reason: str) -> ScanRefused:
    return ScanRefused(f"layer is not a valid tar/gzip/zstd stream: {reason}")


def media_type_compression(media_type: str) -> str | None:
    """What a layer's media type says about its compression (None: it says nothing)."""
    if media_type.endswith(("+gzip", ".tar.gzip", ".tar.gz")):
        return GZIP
    if media_type.endswith("+zstd"):
        return ZSTD
    if media_type.endswith((".tar", ".diff.tar")) or media_type.endswith("layer.v1.tar"):
        return TAR
    return None


def sniff(head: bytes) -> str:
    """The compression of a stream from its first bytes; ScanRefused for the ones we do not
    read (bzip2, xz...)."""
    if head.startswith(GZIP_MAGIC):
        return GZIP
    if head.startswith(ZSTD_MAGIC):
        return ZSTD
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            raise ScanRefused(f"layer is compressed with {name}, which the scanner does not read")
    return TAR


class Chunks(Protocol):
    compressed: int  # compressed bytes consumed so far (the stream's bytes for a plain tar)

    def next(self) -> bytes:
        """Up to OUT_BYTES of decompressed data; b"" at the end of the stream."""
        ...


class Counting:
    """The source stream, with what was already read put back in front, counting bytes."""

    def __init__(self, stream: BinaryIO, first: bytes) -> None:
        self._stream = stream
        self._first = first
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self._first:
            cut = size if size > 0 else len(self._first)
            data, self._first = self._first[:cut], self._first[cut:]
        else:
            data = self._stream.read(size if size > 0 else IN_BYTES)
        self.count += len(data)
        return data


class PlainChunks:
    def __init__(self, source: Counting) -> None:
        self._source = source
        self.compressed = 0

    def next(self) -> bytes:
        data = self._source.read(OUT_BYTES)
        self.compressed = self._source.count
        return data


def _inflate_module() -> Any:
    """ISA-L's zlib-compatible inflate when the `isal` package is installed (about twice as
    fast on layers), else zlib: the same API, the same results."""
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:
        return zlib


_INFLATE: Final = _inflate_module()
_INFLATE_ERRORS: Final = (zlib.error, _INFLATE.error)


class GzipChunks:
    """gzip, member after member (a multi-member stream is one stream); trailing zeros or
    bytes that do not start another member end it."""

    def __init__(self, source: Counting) -> None:
        self._source = source
        self._inflate: zlib._Decompress = _INFLATE.decompressobj(31)
        self._input = b""
        self._source_done = False
        self._member_started = False
        self.compressed = 0

    def next(self) -> bytes:
        while True:
            if not self._input:
                if self._source_done:
                    return self._end()
                self._input = self._source.read(IN_BYTES)
                if not self._input:
                    self._source_done = True
                    continue
            if self._inflate.eof:
                if not self._input.startswith(GZIP_MAGIC[: len(self._input)]):
                    # Padding or garbage after the last member: the stream ends here.
                    self._input = b""
                    self._source_done = True
                    continue
                if len(self._input) < 2 and not self._source_done:
                    more = self._source.read(IN_BYTES)
                    self._input += more
                    if more:
                        continue
                self._inflate = _INFLATE.decompressobj(31)
            self._member_started = True
            try:
                out = self._inflate.decompress(self._input, OUT_BYTES)
            except _INFLATE_ERRORS as exc:
                raise invalid(f"gzip: {exc}") from None
            if self._inflate.eof:
                self._input = self._inflate.unused_data
            else:
                self._input = self._inflate.unconsumed_tail
            self.compressed = self._source.count - len(self._input)
            if out:
                return out

    def _end(self) -> bytes:
        if self._member_started and not self._inflate.eof:
            try:
                rest = self._inflate.flush()
            except _INFLATE_ERRORS as exc:  # pragma: no cover - flush only reports truncation
                raise invalid(f"gzip: {exc}") from None
            if rest:
                return rest
            raise invalid("gzip: the stream is truncated")
        return b""


class ZstdChunks:
    def __init__(self, source: Counting) -> None:
        self._source = source
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._reader = decompressor.stream_reader(
            cast(BinaryIO, source), read_size=IN_BYTES // 4, read_across_frames=True, closefd=False
        )
        self.compressed = 0

    def next(self) -> bytes:
        try:
            data = self._reader.read(OUT_BYTES)
        except zstandard.ZstdError as exc:
            raise invalid(f"zstd: {exc}") from None
        self.compressed = self._source.count
        return data


class Prefetch:
    """Decompression on a thread of its own, a few chunks ahead of the tar walk. zlib and
    zstd release the GIL while they inflate, so on two cores the detectors' Python work and
    the inflation overlap. Bounded: at most `DEPTH` chunks wait in the queue."""

    DEPTH: Final = 4

    def __init__(self, inner: Chunks) -> None:
        self._inner = inner
        self._queue: queue.Queue[tuple[bytes, int] | BaseException] = queue.Queue(self.DEPTH)
        self._stop = threading.Event()
        self._done = False
        self.compressed = 0
        self._thread = threading.Thread(target=self._run, name="layer-inflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: tuple[bytes, int] | BaseException
        while not self._stop.is_set():
            try:
                chunk = self._inner.next()
                item = (chunk, self._inner.compressed)
            except BaseException as exc:  # handed to the walker, which raises it
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, tuple) or not item[0]:
                return

    def next(self) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        chunk, self.compressed = item
        if not chunk:
            self._done = True
        return chunk

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)


def open_chunks(stream: BinaryIO, *, threaded: bool = True) -> tuple[str, Chunks, Prefetch | None]:
    """The compression of `stream` (sniffed from its first bytes), its decompressed chunks,
    and the decompression thread to close when done (None for a plain tar, or unthreaded)."""
    first = stream.read(IN_BYTES)
    source = Counting(stream, first)
    compression = sniff(first)
    if compression == TAR:
        return compression, PlainChunks(source), None
    inner: Chunks = GzipChunks(source) if compression == GZIP else ZstdChunks(source)
    if not threaded:
        return compression, inner, None
    prefetch = Prefetch(inner)
    return compression, prefetch, prefetch

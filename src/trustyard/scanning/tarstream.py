"""A layer as a stream of tar entries: a minimal tar header parser (ustar, GNU and pax) over
the decompressed stream (`decompress.py`), that never seeks and never copies content nobody
reads.

Memory stays bounded whatever the input: decompression produces at most `OUT_BYTES` per
step, extended headers are capped, and the byte and ratio limits are checked on every step,
so a decompression bomb is refused after the ratio floor instead of being inflated.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import BinaryIO, Final

from trustyard.scanning.decompress import (
    TAR,
    invalid,
    media_type_compression,
    open_chunks,
)
from trustyard.scanning.interfaces import MIB, Limits
from trustyard.scanning.model import ScanRefused

PROGRESS_EVERY: Final = 8 * MIB  # compressed bytes between two progress calls
MAX_EXTENDED_HEADER: Final = 1 * MIB  # a pax or GNU long-name header's payload

BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(BLOCK)

# Entry kinds (tar type flags, with the aliases folded).
REGULAR: Final = "0"
HARDLINK: Final = "1"
SYMLINK: Final = "2"
DIRECTORY: Final = "5"
SPARSE: Final = "S"  # GNU sparse file (old format, or pax GNU.sparse.*): content skipped
OTHER: Final = "?"  # devices, fifos, volume labels...

_TYPES: Final = {
    b"0": REGULAR,
    b"\x00": REGULAR,
    b"7": REGULAR,  # contiguous file
    b"1": HARDLINK,
    b"2": SYMLINK,
    b"5": DIRECTORY,
    b"S": SPARSE,
}
# Types whose size field says nothing about data blocks (as tarfile and Go's archive/tar).
_HEADER_ONLY: Final = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
# Headers about the next entry: GNU long name and long link, pax local and global.
_EXTENDED: Final = frozenset({b"L", b"K", b"x", b"g"})


class TarEntry:
    """One tar member (extended headers already applied)."""

    __slots__ = ("kind", "linkname", "mode", "name", "raw_name_bytes", "size")

    def __init__(
        self, name: str, raw_name_bytes: int, kind: str, size: int, mode: int, linkname: str
    ) -> None:
        self.name = name
        self.raw_name_bytes = raw_name_bytes
        self.kind = kind
        self.size = size
        self.mode = mode
        self.linkname = linkname


def _number(field: bytes) -> int:
    """A numeric header field: octal text (NUL or space terminated) or GNU base-256."""
    first = field[0]
    if first & 0x80:
        value = int.from_bytes(field[1:], "big")
        if first == 0xFF:  # negative in two's complement
            value -= 1 << (8 * (len(field) - 1))
        elif first != 0x80:
            raise invalid(f"bad base-256 number {field!r}")
        return value
    text = field.partition(b"\x00")[0]
    try:
        return int(text or b"0", 8)  # int() ignores the spaces around the digits
    except ValueError:
        if not text.strip():
            return 0
        raise invalid(f"bad number {field!r} in a tar header") from None


def _checksum_ok(header: bytes) -> bool:
    """The header's checksum: the sum of its bytes, the checksum field counted as spaces.
    Adler-32's low half is (1 + that sum) mod 65521: the sum of 512 bytes in C, not in a
    Python loop (a sum it does not match is checked exactly, for old signed-sum writers)."""
    try:
        expected = int(header[148:156].partition(b"\x00")[0] or b"0", 8)
    except ValueError:
        return False
    field = sum(header[148:156])
    if ((zlib.adler32(header) & 0xFFFF) - 1 - field + 256 - expected) % 65521 == 0:
        return True
    unsigned = sum(header) - field + 256
    signed = unsigned - 256 * sum(1 for b in header if b & 0x80)
    signed += 256 * sum(1 for b in header[148:156] if b & 0x80)
    return expected in (unsigned, signed)


def parse_pax(data: bytes) -> dict[str, bytes]:
    """Records of a pax extended header: `LENGTH KEY=VALUE\\n`."""
    records: dict[str, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:  # padding some writers leave
            break
        space = data.find(b" ", pos, pos + 24)
        if space < 0:
            raise invalid("bad pax record")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise invalid("bad pax record length") from None
        stop = pos + length
        if length <= space - pos + 1 or stop > end or data[stop - 1] != 0x0A:
            raise invalid("bad pax record")
        key, eq, value = data[space + 1 : stop - 1].partition(b"=")
        if not eq:
            raise invalid("bad pax record")
        records[key.decode("utf-8", "backslashreplace")] = value
        pos = stop
    return records


def _pax_int(records: dict[str, bytes], key: str) -> int | None:
    value = records.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise invalid(f"bad pax {key} {value[:40]!r}") from None
    if number < 0:
        raise invalid(f"negative pax {key}")
    return number


def _cut(field: bytes) -> bytes:
    """A NUL-terminated string field."""
    nul = field.find(0)
    return field if nul < 0 else field[:nul]


def _entry(
    header: bytes,
    flag: bytes,
    size: int,
    long_name: bytes | None,
    long_link: bytes | None,
    pax: dict[str, bytes] | None,
) -> TarEntry:
    """An entry from its header and the extended headers before it (pax wins over GNU
    long names, which win over the ustar name and prefix)."""
    kind = _TYPES.get(flag, OTHER)
    raw_name = link = None
    if pax:
        raw_name = pax.get("path")
        if "GNU.sparse.name" in pax:
            raw_name = pax["GNU.sparse.name"]
            kind = SPARSE
        elif "GNU.sparse.major" in pax or "GNU.sparse.size" in pax:
            kind = SPARSE
        pax_size = _pax_int(pax, "size")
        if pax_size is not None:
            size = pax_size
        link = pax.get("linkpath")
    if raw_name is None:
        raw_name = long_name
    if raw_name is None:
        raw_name = _cut(header[0:100])
        if header[345] and header[257:263] == b"ustar\x00":
            raw_name = _cut(header[345:500]) + b"/" + raw_name
    if kind == REGULAR:
        if flag == b"\x00" and raw_name.endswith(b"/"):
            kind = DIRECTORY  # old V7 writers mark directories this way
            size = 0
        return TarEntry(
            raw_name.decode("utf-8", "backslashreplace"),
            len(raw_name),
            kind,
            size,
            _number(header[100:108]),
            "",
        )
    if link is None:
        link = long_link
    if link is None:
        link = _cut(header[157:257])
    if flag in _HEADER_ONLY:
        size = 0
    return TarEntry(
        raw_name.decode("utf-8", "backslashreplace"),
        len(raw_name),
        kind,
        size,
        _number(header[100:108]),
        link.decode("utf-8", "backslashreplace"),
    )


class TarStream:
    """Tar entries from a (possibly compressed) layer stream.

    Use `next()` for the next entry, then `read(n)` for the first bytes of its content (or
    nothing: the rest is skipped without being copied when `next()` is called again).
    `peek(n)` shows bytes of the content without consuming them.
    """

    def __init__(
        self,
        stream: BinaryIO,
        limits: Limits,
        *,
        media_type: str = "",
        progress: Callable[[int], None] | None = None,
        threaded: bool = True,
    ) -> None:
        self.compression, self._chunks, self._prefetch = open_chunks(stream, threaded=threaded)
        self.declared = media_type_compression(media_type)
        self._limits = limits
        self._progress = progress
        self._next_progress = PROGRESS_EVERY
        self._buf = b""
        self._pos = 0
        self._remaining = 0  # content bytes of the current entry not consumed yet
        self._padding = 0  # the zeros after them, up to the next block
        self._global: dict[str, bytes] = {}
        self._ended = False
        self._entries = 0
        self.uncompressed = 0

    @property
    def compressed(self) -> int:
        return self._chunks.compressed

    # --- the byte layer ----------------------------------------------------------------

    def _more(self) -> bytes:
        chunk = self._chunks.next()
        if chunk:
            self.uncompressed += len(chunk)
            self._check_limits()
        if self._progress is not None and self._chunks.compressed >= self._next_progress:
            self._next_progress = self._chunks.compressed + PROGRESS_EVERY
            self._progress(self._chunks.compressed)
        return chunk

    def _check_limits(self) -> None:
        limits = self._limits
        total = self.uncompressed
        if total > limits.max_layer_bytes:
            raise ScanRefused(
                f"layer is larger than {limits.max_layer_bytes} bytes uncompressed "
                f"(the max_layer_bytes limit)"
            )
        if total > limits.ratio_floor_bytes and self.compression != TAR:
            compressed = max(self._chunks.compressed, 1)
            if total > limits.max_ratio * compressed:
                raise ScanRefused(
                    f"layer's compression ratio is over {limits.max_ratio}:1 (the max_ratio "
                    f"limit): {total} bytes from {compressed} compressed bytes"
                )

    def _take(self, size: int) -> bytes:
        """Exactly `size` bytes (fewer only at the end of the stream)."""
        buf = self._buf
        pos = self._pos
        end = pos + size
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        need = size - (len(buf) - pos)
        while need > 0:
            chunk = self._more()
            if not chunk:
                self._buf = b""
                self._pos = 0
                return b"".join(parts)
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf = chunk
                self._pos = need
                return b"".join(parts)
            parts.append(chunk)
            need -= len(chunk)
        self._buf = b""
        self._pos = 0
        return b"".join(parts)

    def _skip(self, size: int) -> int:
        """Discard `size` bytes without copying them; return how many were there."""
        avail = len(self._buf) - self._pos
        if size <= avail:
            self._pos += size
            return size
        skipped = avail
        while True:
            chunk = self._more()
            if not chunk:
                self._buf = b""
                self._pos = 0
                return skipped
            if skipped + len(chunk) >= size:
                self._buf = chunk
                self._pos = size - skipped
                return size
            skipped += len(chunk)

    def _block(self) -> bytes:
        header = self._take(BLOCK)
        if len(header) < BLOCK:
            raise invalid("unexpected end of stream inside a tar header")
        return header

    def _payload(self, size: int) -> bytes:
        if size > MAX_EXTENDED_HEADER:
            raise ScanRefused(
                f"layer has an extended tar header of {size} bytes "
                f"(more than the {MAX_EXTENDED_HEADER}-byte limit)"
            )
        data = self._take(size)
        if len(data) < size:
            raise invalid("unexpected end of stream inside an extended header")
        pad = -size % BLOCK
        if pad and self._skip(pad) < pad:
            raise invalid("unexpected end of stream inside an extended header")
        return data

    # --- the entry layer ---------------------------------------------------------------

    def read(self, size: int) -> bytes:
        """Up to `size` bytes of the current entry's content."""
        size = min(size, self._remaining)
        data = self._take(size)
        self._remaining -= len(data)
        if len(data) < size:
            raise invalid("unexpected end of stream inside a file's content")
        return data

    def peek(self, size: int) -> bytes:
        """Up to `size` bytes of the current entry's content, left to be read."""
        size = min(size, self._remaining)
        if self._pos + size <= len(self._buf):
            return self._buf[self._pos : self._pos + size]
        data = self._take(size)
        if len(data) < size:
            raise invalid("unexpected end of stream inside a file's content")
        # Put it back: what is left of the buffer follows it.
        self._buf = data + self._buf[self._pos :]
        self._pos = 0
        return data

    def next(self) -> TarEntry | None:
        """The next entry, or None after the end-of-archive marker."""
        if self._ended:
            return None
        rest = self._remaining + self._padding
        if rest and self._skip(rest) < rest:
            raise invalid("unexpected end of stream inside a file's content")
        self._remaining = self._padding = 0
        long_name: bytes | None = None
        long_link: bytes | None = None
        pax: dict[str, bytes] = {}
        extended = False  # an extended header was read: its entry must follow
        while True:
            header = self._take(BLOCK)
            if header == _ZERO_BLOCK or (not header and self._entries and not extended):
                # The end-of-archive marker, or (tolerated, as tar and tarfile do) a stream
                # that simply ends where the next header would start.
                self._ended = True
                return None
            if len(header) < BLOCK:
                raise invalid("unexpected end of stream inside a tar header")
            if not _checksum_ok(header):
                raise invalid("bad tar header checksum")
            flag = header[156:157]
            size = _number(header[124:136])
            if size < 0:
                raise invalid("negative size in a tar header")
            if flag not in _EXTENDED:
                break
            extended = True
            if flag == b"L":
                long_name = _cut(self._payload(size))
            elif flag == b"K":
                long_link = _cut(self._payload(size))
            elif flag == b"x":
                pax = parse_pax(self._payload(size))
            else:
                self._global.update(parse_pax(self._payload(size)))
        if self._global:
            pax = {**self._global, **pax}
        if flag == b"S":
            self._skip_sparse_headers(header)
        entry = _entry(header, flag, size, long_name, long_link, pax)
        self._entries += 1
        self._remaining = entry.size
        self._padding = -entry.size % BLOCK
        return entry

    def _skip_sparse_headers(self, header: bytes) -> None:
        extended = header[482]
        while extended:
            block = self._block()
            extended = block[504]

    def close(self) -> None:
        """Stop the decompression thread (the stream may be closed after this)."""
        if self._prefetch is not None:
            self._prefetch.close()

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def drain(self) -> None:
        """Read the stream to its end (after the end-of-archive marker), so the compressed
        stream is checked whole and `uncompressed` counts every byte."""
        self._buf = b""
        self._pos = 0
        while self._more():
            pass
